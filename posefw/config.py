"""TOML configuration for larger systems that pick backends from a file.

    [decoder]
    name = "cupy-full"
    algorithm = "dark-udp"
    kernel = 11
    [decoder.options]        # passed to the decoder's constructor

    [engine]
    name = "torch"
    [engine.options]         # e.g. precision = "fp16", checkpoint = "vitpose-b.pth"

    [pipeline]
    preprocess = "auto"      # "gpu" or "cpu": where crops are made (auto: the engine's device)
    flip_test = false

    [bench]
    batches = [1, 64]
    iterations = 100
    warmup = 20

Values given on the command line override the file.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]


@dataclass
class DecoderConfig:
    name: str = "numpy-cpu"
    algorithm: str = "dark-udp"
    kernel: int = 11
    options: dict[str, Any] = field(default_factory=dict)


@dataclass
class EngineConfig:
    name: str = "torch"
    options: dict[str, Any] = field(default_factory=dict)


@dataclass
class PipelineConfig:
    preprocess: str = "auto"
    flip_test: bool = False

    def __post_init__(self) -> None:
        if self.preprocess not in ("auto", "gpu", "cpu"):
            raise ValueError(f"config [pipeline].preprocess: expected 'auto', 'gpu' or 'cpu', got {self.preprocess!r}")


@dataclass
class BenchConfig:
    batches: list[int] = field(default_factory=lambda: [1, 8, 16, 32, 64])
    iterations: int = 100
    warmup: int = 20
    decoders: list[str] = field(default_factory=list)


@dataclass
class ServeConfig:
    """``posefw serve``: the HTTP endpoint, Ray Serve's replicas and its request batching."""

    host: str = "127.0.0.1"
    port: int = 8000
    route_prefix: str = "/"
    num_replicas: int = 1
    num_gpus: float = 0.0  # per replica; 1.0 gives each replica a GPU of its own
    num_cpus: float = 1.0
    max_batch_size: int = 16  # requests (frames) per engine call; their boxes share its batches
    batch_wait_timeout_s: float = 0.005  # how long a batch waits to fill
    max_ongoing_requests: int = 64

    def __post_init__(self) -> None:
        if self.max_batch_size < 1 or self.num_replicas < 1:
            raise ValueError("config [serve]: max_batch_size and num_replicas must be >= 1")
        if self.batch_wait_timeout_s < 0 or self.num_gpus < 0 or self.num_cpus < 0:
            raise ValueError("config [serve]: batch_wait_timeout_s, num_gpus and num_cpus must be >= 0")


@dataclass
class Config:
    decoder: DecoderConfig = field(default_factory=DecoderConfig)
    engine: EngineConfig = field(default_factory=EngineConfig)
    bench: BenchConfig = field(default_factory=BenchConfig)
    pipeline: PipelineConfig = field(default_factory=PipelineConfig)
    serve: ServeConfig = field(default_factory=ServeConfig)
    source: str = "defaults"
    #: The keys each section of the file set (defaults fill the rest; a caller may prefer its own).
    given: dict[str, tuple[str, ...]] = field(default_factory=dict)

    def with_overrides(self, section: str, **values: Any) -> Config:
        """A copy where the non-None ``values`` replace the section's fields."""
        sub = getattr(self, section)
        given = {k: v for k, v in values.items() if v is not None}
        _check_keys(section, given, sub)
        return dataclasses.replace(self, **{section: dataclasses.replace(sub, **given)})


_TYPES = {int: (int,), float: (int, float), str: (str,), dict: (dict,), list: (list,), bool: (bool,)}


def _check_keys(section: str, values: dict[str, Any], target: Any) -> None:
    known = {f.name for f in dataclasses.fields(target)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ValueError(f"config [{section}]: unknown keys {unknown}; expected {sorted(known)}")


def _section(cls: type, section: str, values: Any) -> Any:
    if not isinstance(values, dict):
        raise TypeError(f"config [{section}]: expected a table, got {type(values).__name__}")
    default = cls()
    _check_keys(section, values, default)
    for key, value in values.items():
        expected = type(getattr(default, key))
        if (isinstance(value, bool) and expected is not bool) or not isinstance(value, _TYPES[expected]):
            raise TypeError(
                f"config [{section}].{key}: expected {expected.__name__}, got {type(value).__name__} {value!r}"
            )
    return cls(**values)


def load_config(path: str | Path) -> Config:
    """Read a posefw TOML file into typed sections; unknown sections or keys are errors."""
    p = Path(path)
    try:
        data = tomllib.loads(p.read_text())
    except FileNotFoundError:
        raise FileNotFoundError(f"config: file not found: {p}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"config: {p} is not valid TOML: {exc}") from None
    return config_from_dict(data, str(p))


SECTIONS = {
    "decoder": DecoderConfig,
    "engine": EngineConfig,
    "bench": BenchConfig,
    "pipeline": PipelineConfig,
    "serve": ServeConfig,
}


def config_from_dict(data: dict[str, Any], source: str = "dict") -> Config:
    """A Config from TOML-shaped tables (what ``config_to_dict`` gives, e.g. to a serving replica)."""
    unknown = sorted(set(data) - set(SECTIONS))
    if unknown:
        raise ValueError(f"config: unknown sections {unknown} in {source}; expected {sorted(SECTIONS)}")
    parts = {k: _section(cls, k, data.get(k, {})) for k, cls in SECTIONS.items()}
    given = {k: tuple(v) for k, v in data.items() if isinstance(v, dict)}
    return Config(**parts, source=source, given=given)


def config_to_dict(config: Config) -> dict[str, Any]:
    """The sections as plain tables (picklable, TOML-shaped)."""
    return {k: dataclasses.asdict(getattr(config, k)) for k in SECTIONS}
