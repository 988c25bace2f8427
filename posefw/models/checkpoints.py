"""Loading ViTPose weights from local files: official mmpose ``.pth`` and HuggingFace safetensors.

Nothing is downloaded. The layout is detected from the keys; HuggingFace keys are renamed to
the official ones (query/key/value concatenated into qkv). Loading is strict: missing or
unexpected keys and wrong shapes fail with their lists. ``backbone.cls_token`` (unused by
ViTPose) is ignored.
"""

from __future__ import annotations

import re
from pathlib import Path

import torch

from posefw.models.vitpose import ViTPose, ViTPoseConfig

IGNORED = ("backbone.cls_token",)


class CheckpointError(ValueError):
    pass


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"checkpoint: file not found: {p}")
    if p.suffix == ".safetensors":
        try:
            from safetensors.torch import load_file
        except ImportError as exc:
            raise ImportError("checkpoint: reading .safetensors needs safetensors: pip install safetensors") from exc
        return dict(load_file(str(p)))
    try:
        obj = torch.load(str(p), map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unreadable file is a checkpoint error
        raise CheckpointError(f"checkpoint: {p} is not a readable PyTorch file: {exc}") from None
    if isinstance(obj, dict) and "state_dict" in obj and isinstance(obj["state_dict"], dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict):
        raise CheckpointError(f"checkpoint: {p} holds {type(obj).__name__}, expected a state dict")
    return obj


def is_huggingface(sd: dict[str, torch.Tensor]) -> bool:
    return any(k.startswith("backbone.embeddings.") for k in sd)


_HF_RULES = [
    (r"^backbone\.embeddings\.patch_embeddings\.projection\.", "backbone.patch_embed.proj."),
    (r"^backbone\.embeddings\.position_embeddings$", "backbone.pos_embed"),
    (r"^backbone\.encoder\.layer\.(\d+)\.layernorm_before\.", r"backbone.blocks.\1.norm1."),
    (r"^backbone\.encoder\.layer\.(\d+)\.layernorm_after\.", r"backbone.blocks.\1.norm2."),
    (r"^backbone\.encoder\.layer\.(\d+)\.attention\.output\.dense\.", r"backbone.blocks.\1.attn.proj."),
    (r"^backbone\.encoder\.layer\.(\d+)\.mlp\.fc([12])\.", r"backbone.blocks.\1.mlp.fc\2."),
    (r"^backbone\.layernorm\.", "backbone.last_norm."),
    (r"^head\.deconv1\.", "keypoint_head.deconv_layers.0."),
    (r"^head\.batchnorm1\.", "keypoint_head.deconv_layers.1."),
    (r"^head\.deconv2\.", "keypoint_head.deconv_layers.3."),
    (r"^head\.batchnorm2\.", "keypoint_head.deconv_layers.4."),
    (r"^head\.conv\.", "keypoint_head.final_layer."),
]
_QKV = re.compile(r"^backbone\.encoder\.layer\.(\d+)\.attention\.attention\.(query|key|value)\.(weight|bias)$")


def from_huggingface(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """HuggingFace VitPoseForPoseEstimation keys -> official ViTPose keys."""
    out: dict[str, torch.Tensor] = {}
    qkv: dict[tuple[str, str], dict[str, torch.Tensor]] = {}
    for key, val in sd.items():
        m = _QKV.match(key)
        if m:
            qkv.setdefault((m.group(1), m.group(3)), {})[m.group(2)] = val
            continue
        for pat, rep in _HF_RULES:
            if re.match(pat, key):
                out[re.sub(pat, rep, key)] = val
                break
        else:
            out[key] = val  # left as is: reported as unexpected by the strict load
    for (i, kind), parts in qkv.items():
        missing = {"query", "key", "value"} - set(parts)
        if missing:
            raise CheckpointError(f"checkpoint: layer {i} attention {kind} lacks {sorted(missing)}")
        out[f"backbone.blocks.{i}.attn.qkv.{kind}"] = torch.cat([parts["query"], parts["key"], parts["value"]], 0)
    return out


HEADS = {384: 12, 768: 12, 1024: 16, 1280: 16}


def config_from_state_dict(sd: dict[str, torch.Tensor], heads: int | None = None) -> ViTPoseConfig:
    """Infer width, depth, keypoints and head type from shapes.

    The number of attention heads is not in the weights: it is ViTPose's for the S/B/L/H
    widths, and must be given (``heads``) for any other width.
    """
    try:
        pos = sd["backbone.pos_embed"]
        final = sd["keypoint_head.final_layer.weight"]
    except KeyError as exc:
        raise CheckpointError(f"checkpoint: missing key {exc.args[0]!r}; is this a ViTPose checkpoint?") from None
    dim = int(pos.shape[-1])
    depth = len({k.split(".")[2] for k in sd if k.startswith("backbone.blocks.")})
    heads = heads or HEADS.get(dim)
    if heads is None:
        raise CheckpointError(f"checkpoint: width {dim} is not a ViTPose size (S/B/L/H); pass heads=")
    classic = "keypoint_head.deconv_layers.0.weight" in sd
    fc1 = sd.get("backbone.blocks.0.mlp.fc1.weight")
    ratio = fc1.shape[0] / dim if fc1 is not None else 4.0
    chans = int(sd["keypoint_head.deconv_layers.0.weight"].shape[1]) if classic else 256
    return ViTPoseConfig(
        dim=dim,
        depth=depth,
        heads=heads,
        mlp_ratio=ratio,
        num_keypoints=int(final.shape[0]),
        head="classic" if classic else "simple",
        deconv_channels=chans,
    )


def load_vitpose(
    path: str | Path, config: ViTPoseConfig | None = None, strict: bool = True, heads: int | None = None
) -> ViTPose:
    """Build a ViTPose from a local checkpoint (either layout); strict by default."""
    sd = read_state_dict(path)
    if is_huggingface(sd):
        sd = from_huggingface(sd)
    sd = {k: v for k, v in sd.items() if k not in IGNORED}
    cfg = config or config_from_state_dict(sd, heads)
    model = ViTPose(cfg)
    expected = model.state_dict()
    wrong = [
        f"{k}: checkpoint {tuple(v.shape)} vs model {tuple(expected[k].shape)}"
        for k, v in sd.items()
        if k in expected and tuple(v.shape) != tuple(expected[k].shape)
    ]
    if wrong:
        raise CheckpointError(f"checkpoint {path}: wrong shapes: " + "; ".join(wrong[:20]))
    missing = sorted(set(expected) - set(sd))
    unexpected = sorted(set(sd) - set(expected))
    if strict and (missing or unexpected):
        raise CheckpointError(
            f"checkpoint {path}: missing keys {missing[:20]}{' ...' if len(missing) > 20 else ''}; "
            f"unexpected keys {unexpected[:20]}{' ...' if len(unexpected) > 20 else ''}"
        )
    model.load_state_dict(sd, strict=strict)
    return model.eval()
