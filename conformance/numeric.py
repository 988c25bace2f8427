"""Numeric conformance: a decoder's output against numpy-cpu on every case family.

Rules (docs/conformance.md): identical integer argmax (ties included) and scores; the same
NaN and (-1, -1) keypoints; <= 1e-3 heatmap px on well-conditioned keypoints; in image space
the same bound scaled by the crop. Each failure names its case, seed, batch and keypoint
index, expected and got values, and what the pattern of failures most likely means.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np
from posefw.conformance.cases import Case, cases, well_conditioned

from posefw.arrays import to_numpy

TOL_PX = 1e-3
MAX_LISTED = 20


@dataclass
class Failure:
    case: str
    seed: int
    algorithm: str
    check: str
    batch_index: int
    keypoint_index: int
    expected: Any
    got: Any


@dataclass
class CheckResult:
    case: str
    algorithm: str
    check: str
    passed: bool
    message: str = ""
    checked: int = 0
    max_error_px: float = 0.0
    failures: list[Failure] = field(default_factory=list)


def _diagnose(exp: np.ndarray, got: np.ndarray) -> str:
    """Name the most likely defect from the failing keypoints' pattern."""
    if exp.size == 0:
        return ""
    d = got - exp
    if np.allclose(got, exp[:, ::-1], atol=1e-3):
        return "x and y are swapped"
    mean, spread = d.mean(axis=0), d.std(axis=0)
    if np.all(spread < 1e-3) and np.any(np.abs(mean) > 1e-3):
        return f"a constant shift of ({mean[0]:+.4f}, {mean[1]:+.4f}) px"
    return f"mean offset ({mean[0]:+.4f}, {mean[1]:+.4f}) px, spread ({spread[0]:.4f}, {spread[1]:.4f})"


def _failures(case: Case, algorithm: str, check: str, where: np.ndarray, exp, got) -> list[Failure]:
    out = []
    for n, k in np.argwhere(where)[:MAX_LISTED]:
        e, g = exp[n, k], got[n, k]
        out.append(
            Failure(
                case.name, case.seed, algorithm, check, int(n), int(k), np.asarray(e).tolist(), np.asarray(g).tolist()
            )
        )
    return out


def _shape_check(case, algorithm, res, n, k) -> CheckResult | None:
    kp, sc = res.keypoints, res.scores
    if tuple(kp.shape) != (n, k, 2) or tuple(sc.shape) != (n, k):
        return CheckResult(
            case.name,
            algorithm,
            "shape",
            False,
            f"returned keypoints {tuple(kp.shape)} and scores {tuple(sc.shape)} for {n} crops x {k} "
            f"keypoints: expected ({n}, {k}, 2) and ({n}, {k}); rows were dropped or added",
        )
    if kp.dtype != np.float32 or sc.dtype != np.float32:
        return CheckResult(
            case.name, algorithm, "dtype", False, f"expected float32 outputs, got {kp.dtype} and {sc.dtype}"
        )
    return None


def compare(case: Case, algorithm: str, ref, res, kernel: int = 11) -> list[CheckResult]:
    """All checks of one decoded case against the reference result (both NumPy)."""
    n, k = case.heatmaps.shape[:2]
    bad_shape = _shape_check(case, algorithm, res, n, k)
    if bad_shape:
        return [bad_shape]
    out = []
    e_kp, g_kp, e_sc, g_sc = ref.keypoints, res.keypoints, ref.scores, res.scores

    e_nan, g_nan = np.isnan(e_sc), np.isnan(g_sc) | np.isnan(g_kp).any(-1)
    where = e_nan != (np.isnan(g_sc) & np.isnan(g_kp).all(-1))
    msg = (
        ""
        if not where.any()
        else (
            "non-finite heatmaps must give NaN keypoints and NaN scores, and finite ones never NaN "
            f"({int((e_nan & ~g_nan).sum())} NaN keypoints missing, {int((~e_nan & g_nan).sum())} unexpected)"
        )
    )
    out.append(
        CheckResult(
            case.name,
            algorithm,
            "nan-rule",
            not where.any(),
            msg,
            int(where.size),
            failures=_failures(case, algorithm, "nan-rule", where, e_sc, g_sc),
        )
    )

    live = ~e_nan & ~g_nan
    where = live & (e_sc != g_sc)
    msg = (
        ""
        if not where.any()
        else "scores must equal the raw heatmap maximum exactly (is the argmax or its value taken on the raw map?)"
    )
    out.append(
        CheckResult(
            case.name,
            algorithm,
            "scores",
            not where.any(),
            msg,
            int(live.sum()),
            failures=_failures(case, algorithm, "scores", where, e_sc, g_sc),
        )
    )

    invalid = live & (e_sc <= 0)
    where = invalid & np.any(g_kp != e_kp, axis=-1)
    msg = "" if not where.any() else "keypoints whose maximum is <= 0 must stay at (-1, -1) (before the transform)"
    out.append(
        CheckResult(
            case.name,
            algorithm,
            "non-positive",
            not where.any(),
            msg,
            int(invalid.sum()),
            failures=_failures(case, algorithm, "non-positive", where, e_kp, g_kp),
        )
    )

    good = live & (e_sc > 0) & well_conditioned(case.heatmaps, algorithm, kernel)
    err = np.abs(g_kp - e_kp).max(axis=-1) if g_kp.size else np.zeros((n, k))
    where = good & ~(err <= TOL_PX)
    worst = float(err[good].max()) if good.any() else 0.0
    msg = (
        ""
        if not where.any()
        else (
            f"{int(where.sum())} well-conditioned keypoints differ by more than {TOL_PX} px (worst {worst:.4g}): "
            + _diagnose(e_kp[where], g_kp[where])
        )
    )
    out.append(
        CheckResult(
            case.name,
            algorithm,
            "keypoints",
            not where.any(),
            msg,
            int(good.sum()),
            worst,
            _failures(case, algorithm, "keypoints", where, e_kp, g_kp),
        )
    )
    return out


def boxes_for(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centers = rng.uniform(50, 600, (n, 2))
    w = rng.uniform(40, 400, n)
    return centers, np.stack([w, w / 0.75], axis=1)


def compare_image_space(case: Case, algorithm: str, ref, res, scales: np.ndarray, kernel: int = 11) -> CheckResult:
    """The transform back to the image: the px bound scaled by each crop's heatmap-pixel size."""
    n, k, h, w = case.heatmaps.shape
    bad = _shape_check(case, algorithm, res, n, k)
    if bad:
        return bad
    good = ~np.isnan(ref.scores) & (ref.scores > 0) & well_conditioned(case.heatmaps, algorithm, kernel)
    unit = (scales / np.array([w, h])).max(axis=1)[:, None]
    tol = TOL_PX * unit + 1e-4 * np.abs(ref.keypoints).max(axis=-1)
    err = np.abs(res.keypoints - ref.keypoints).max(axis=-1)
    where = good & ~(err <= tol)
    msg = ""
    if where.any():
        e, g = ref.keypoints[where], res.keypoints[where]
        msg = f"{int(where.sum())} keypoints differ in image space after the transform: " + _diagnose(e, g)
        ratio = np.median((w - 1.0) / w), np.median((h - 1.0) / h)
        msg += f" (UDP maps heatmap px with scale/(size-1); a factor near {ratio[0]:.4f} means size was used)"
    return CheckResult(
        case.name,
        algorithm,
        "transform",
        not where.any(),
        msg,
        int(good.sum()),
        float(err[good].max()) if good.any() else 0.0,
        _failures(case, algorithm, "transform", where, ref.keypoints, res.keypoints),
    )


#: Families that check the decoder object rather than one batch: other kernel sizes, the
#: caller's heatmaps left untouched, and one instance shared by several threads.
BEHAVIOUR_FAMILIES = ("kernel-5", "kernel-7", "no-mutation", "threads")


def family_names() -> list[str]:
    """Every family name ``run`` accepts."""
    from posefw.conformance.cases import case_names

    return case_names() + list(BEHAVIOUR_FAMILIES)


def run(
    make_decoder: Callable[..., Any],
    algorithms: tuple[str, ...],
    seed: int = 0,
    to_input: Callable[[np.ndarray], Any] = lambda a: a,
    kernel: int = 11,
    families: set[str] | None = None,
    first_crops: int | None = None,
) -> list[CheckResult]:
    """Run every case (or the named ones) for each algorithm; ``make_decoder(algorithm=, kernel=)``.

    A family name that does not exist is an error (a misspelt name must not pass on zero checks).
    ``first_crops`` cuts every case to its first crops (views, so strided cases stay strided):
    for backends too slow for the whole suite, such as numba's CUDA simulator.
    """
    if families is not None:
        unknown = sorted(set(families) - set(family_names()))
        if unknown or not families:
            raise ValueError(f"families: unknown {unknown or '(none given)'}; known: {', '.join(family_names())}")
    results: list[CheckResult] = []
    all_cases = cases(seed, None if families is None else set(families))
    if first_crops is not None:
        all_cases = [replace(c, heatmaps=c.heatmaps[:first_crops]) for c in all_cases]
    behaviours = [f for f in BEHAVIOUR_FAMILIES if families is None or f in families]
    for algorithm in algorithms:
        ref_dec = Reference(algorithm, kernel)
        dec = make_decoder(algorithm=algorithm, kernel=kernel)
        for case in all_cases:
            ref = ref_dec.decode(case.heatmaps)
            try:
                res = _host(dec.decode(to_input(case.heatmaps)))
            except Exception as exc:  # noqa: BLE001 - a crash is a failed case, not a crashed suite
                results.append(
                    CheckResult(case.name, algorithm, "runs", False, f"decode raised {type(exc).__name__}: {exc}")
                )
                continue
            checks = compare(case, algorithm, ref, res, kernel)
            for c in checks:
                if not c.passed and case.hint:
                    c.message += f" [case {case.name}: {case.hint}]"
            results += checks
            if case.name == "realistic":
                centers, scales = boxes_for(case.heatmaps.shape[0], seed)
                ref_img = ref_dec.decode(case.heatmaps, centers, scales)
                try:
                    res_img = _host(dec.decode(to_input(case.heatmaps), centers, scales))
                except Exception as exc:  # noqa: BLE001
                    results.append(
                        CheckResult(case.name, algorithm, "transform", False, f"decode with boxes raised {exc}")
                    )
                    continue
                results.append(compare_image_space(case, algorithm, ref_img, res_img, scales, kernel))
        for family in behaviours:
            results += _behaviour(family, make_decoder, dec, algorithm, seed, to_input)
    return results


def _behaviour(family: str, make_decoder, dec, algorithm: str, seed: int, to_input) -> list[CheckResult]:
    from posefw.conformance.cases import realistic

    def case(name, heatmaps, hint):
        return Case(name, heatmaps, seed, "behaviour", hint)

    try:
        if family.startswith("kernel-"):
            k = int(family.split("-")[1])
            c = case(family, realistic(seed + 500 + k), f"the kernel={k} option must change the blur, not be ignored")
            kdec = make_decoder(algorithm=algorithm, kernel=k)
            ref = Reference(algorithm, k).decode(c.heatmaps)
            checks = compare(c, algorithm, ref, _host(kdec.decode(to_input(c.heatmaps))), k)
            for r in checks:
                if not r.passed:
                    r.message += f" [case {family}: {c.hint}]"
            return checks
        if family == "no-mutation":
            hm = realistic(seed + 600)
            given = to_input(hm.copy())
            before = np.array(to_numpy(given), copy=True)
            dec.decode(given)
            after = np.asarray(to_numpy(given))
            changed = int((~((before == after) | (np.isnan(before) & np.isnan(after)))).sum())
            return [
                CheckResult(
                    family,
                    algorithm,
                    "no-mutation",
                    changed == 0,
                    "" if not changed else f"decode wrote into the caller's heatmaps ({changed} values changed)",
                    int(before.size),
                )
            ]
        if family == "threads":
            return [_threads(dec, algorithm, seed, to_input)]
    except Exception as exc:  # noqa: BLE001 - a crash is a failed family
        return [CheckResult(family, algorithm, "runs", False, f"raised {type(exc).__name__}: {exc}")]
    raise ValueError(f"families: unknown {family!r}")


def _threads(dec, algorithm: str, seed: int, to_input, threads: int = 4, calls: int = 10) -> CheckResult:
    """One decoder instance, ``threads`` threads, ``calls`` different batches each: every result
    must equal what the same instance returns for that batch alone (its own answers, so the
    check is about sharing, not about the conformance tolerances)."""
    from concurrent.futures import ThreadPoolExecutor

    from posefw.conformance.cases import realistic

    inputs = [realistic(seed + 700 + i, n=3 + i % 4) for i in range(threads * calls)]
    refs = [_host(dec.decode(to_input(h))) for h in inputs]

    def work(i: int):
        return _host(dec.decode(to_input(inputs[i])))

    with ThreadPoolExecutor(threads) as pool:
        got = list(pool.map(work, range(len(inputs))))
    wrong = []
    for i, (r, g) in enumerate(zip(refs, got)):
        same_shape = g.keypoints.shape == r.keypoints.shape
        if (
            not same_shape
            or not np.array_equal(g.keypoints, r.keypoints, equal_nan=True)
            or not np.array_equal(g.scores, r.scores, equal_nan=True)
        ):
            wrong.append(i)
    msg = (
        ""
        if not wrong
        else (
            f"{len(wrong)} of {len(inputs)} results wrong when {threads} threads share one decoder "
            f"(calls {wrong[:8]}): per-call state kept on the instance?"
        )
    )
    return CheckResult("threads", algorithm, "thread-safety", not wrong, msg, len(inputs))


def _host(res):
    from posefw.decoder import DecodeResult, checked_result

    res = checked_result(res, "candidate")
    return DecodeResult(np.asarray(to_numpy(res.keypoints)), np.asarray(to_numpy(res.scores)))


class Reference:
    """The core's reference stages (posefw.dark) with a decoder's call signature."""

    def __init__(self, algorithm: str, kernel: int) -> None:
        self.algorithm, self.kernel = algorithm, kernel

    def decode(self, heatmaps, centers=None, scales=None):
        from posefw.dark import reference_decode

        return reference_decode(heatmaps, self.algorithm, self.kernel, centers, scales)


def summary(results: list[CheckResult]) -> dict[str, Any]:
    """``passed`` only when checks ran and none failed: zero checks is a failure, not a pass."""
    failed = [r for r in results if not r.passed]
    return {
        "passed": bool(results) and not failed,
        "checks": len(results),
        "failed": len(failed),
        "results": [asdict(r) for r in results],
    }
