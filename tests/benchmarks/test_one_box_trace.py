"""The one-box trace on the CPU path: its steps add up to the call and the runner is restored."""

from __future__ import annotations

import pytest
from posefw.benchmarks.end_to_end import latency_breakdown, workload
from posefw.benchmarks.one_box_trace import trace

import posefw
from posefw.host_runner import HostRunner
from posefw.pipeline import Pipeline

pytest.importorskip("cv2")


class _Staged(HostRunner):
    """A host runner whose launch goes through the GPU path's steps (as the trace expects)."""

    def launch(self, plan):
        self._frames(plan)
        self._meta(plan)
        self._replay(1, None, None)
        return super().launch(plan)

    def _frames(self, plan):
        return None

    def _meta(self, plan):
        return None

    def _replay(self, n, crops, stream):
        return None


@pytest.mark.parametrize("staged", [False, True])
def test_trace_steps_add_up_and_the_runner_is_restored(coco_mini, staged):
    ann = coco_mini / "annotations" / "person_keypoints_val2017_coco-mini.json"
    pipe = Pipeline(posefw.create_engine("oracle", annotations=str(ann)), posefw.create_decoder("numpy-cpu"))
    if staged:
        pipe.runner = _Staged(pipe)
    items, _ = workload(1, calls=2)
    steps = trace(pipe, items, iters=20, warmup=2)
    inside = ["planned -> frames0", "frames0 -> frames1", "frames1 -> meta0", "meta0 -> meta1", "meta1 -> replay0"]
    inside += ["replay0 -> replay1", "replay1 -> launched"]
    assert list(steps) == [
        "start -> planned",
        *(inside if staged else ["planned -> launched"]),
        "launched -> results",
        "results -> waited",
        "waited -> end",
        "whole call",
    ]
    assert all(v >= 0 for v in steps.values())
    # medians of parts need not add up exactly, but no step can exceed the whole
    assert max(v for k, v in steps.items() if k != "whole call") <= steps["whole call"]
    assert not {"_frames", "_meta", "_replay"} & set(vars(pipe.runner))  # the class's methods again
    assert pipe(*items[0])[0].valid.all()


def test_latency_breakdown_is_the_trace_in_stages(coco_mini):
    ann = coco_mini / "annotations" / "person_keypoints_val2017_coco-mini.json"
    pipe = Pipeline(posefw.create_engine("oracle", annotations=str(ann)), posefw.create_decoder("numpy-cpu"))
    pipe.runner = _Staged(pipe)  # inner steps exist but are not stamped here
    stages = latency_breakdown(pipe, workload(1, calls=2)[0], iters=10, warmup=1)
    assert list(stages) == [
        "plan",
        "launch",
        "results (device busy)",
        "wait for the device",
        "unpack and scatter",
        "whole call",
    ]
    assert 0 < stages["launch"] <= stages["whole call"] < 10_000  # milliseconds
    assert not {"_frames", "_meta", "_replay"} & set(vars(pipe.runner))
