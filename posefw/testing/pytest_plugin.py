"""pytest plugin (entry point ``pytest11``): conformance for any decoder in one line of CI.

    pytest --posefw-decoder my-decoder [--posefw-algorithm dark-udp] [--posefw-input torch]

adds one test per algorithm (numeric conformance against numpy-cpu) and, when the COCO mini
annotations are present, one COCO AP-parity test per algorithm. Failures print the case,
seed, indices, expected and got values.
"""

from __future__ import annotations

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("posefw", "posefw decoder conformance")
    group.addoption(
        "--posefw-decoder",
        action="append",
        default=[],
        metavar="NAME",
        help="run posefw's conformance suite on this registered decoder (repeatable)",
    )
    group.addoption(
        "--posefw-algorithm",
        action="append",
        default=[],
        metavar="ALG",
        help="restrict to these algorithms (default: all the decoder supports)",
    )
    group.addoption(
        "--posefw-input",
        default="numpy",
        choices=("numpy", "torch", "torch-cuda", "cupy"),
        help="array type fed to the decoder",
    )
    group.addoption("--posefw-seed", type=int, default=0)


class ConformanceFailure(Exception):
    pass


class ConformanceItem(pytest.Item):
    def __init__(self, *, decoder: str, algorithm: str, kind: str, **kwargs):
        super().__init__(**kwargs)
        self.decoder, self.algorithm, self.kind = decoder, algorithm, kind

    def runtest(self) -> None:
        import posefw
        from posefw.conformance import coco_parity, numeric
        from posefw.conformance.cli import converter

        opt = self.config.getoption
        conv = converter(opt("posefw_input"))

        def make(**kw):
            return posefw.create_decoder(self.decoder, **kw)

        if self.kind == "numeric":
            results = numeric.run(make, (self.algorithm,), seed=opt("posefw_seed"), to_input=conv)
            bad = [r for r in results if not r.passed]
            if bad:
                lines = [f"{r.case} [{r.check}]: {r.message}" for r in bad]
                for r in bad[:5]:
                    lines += [
                        f"    seed={f.seed} n={f.batch_index} k={f.keypoint_index} expected={f.expected} got={f.got}"
                        for f in r.failures[:3]
                    ]
                raise ConformanceFailure("\n".join(lines))
        else:
            from posefw.data import coco_mini_annotations

            ann = coco_mini_annotations()
            if not ann.is_file():
                pytest.skip(f"COCO mini annotations not found at {ann} (set POSEFW_DATA)")
            rep = coco_parity.run(make, self.algorithm, ann, seed=opt("posefw_seed"), to_input=conv)
            if not rep["passed"]:
                raise ConformanceFailure(
                    f"COCO AP parity failed: reference {rep['reference']}, "
                    f"candidate {rep['candidate']}, delta {rep['delta']}"
                )

    def repr_failure(self, excinfo, style=None):
        if isinstance(excinfo.value, ConformanceFailure):
            return f"posefw conformance of {self.decoder!r} ({self.algorithm}, {self.kind}) failed:\n{excinfo.value}"
        return super().repr_failure(excinfo, style)

    def reportinfo(self):
        return self.path, None, f"posefw conformance: {self.decoder} {self.algorithm} {self.kind}"


def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list[pytest.Item]) -> None:
    names = config.getoption("posefw_decoder")
    if not names:
        return
    import posefw

    reg = posefw.get_registry()
    for name in names:
        try:
            cls = reg.get("decoder", name)
        except LookupError as exc:
            raise pytest.UsageError(f"--posefw-decoder: {exc}") from None
        algos = config.getoption("posefw_algorithm") or list(cls.algorithms)
        for alg in algos:
            for kind in ("numeric", "coco"):
                items.append(
                    ConformanceItem.from_parent(
                        session, name=f"posefw-conformance[{name}-{alg}-{kind}]", decoder=name, algorithm=alg, kind=kind
                    )
                )
