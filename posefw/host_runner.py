"""The pipeline's CPU path: crops made by OpenCV on the host, for CPU-only machines and CI.

Every batch runs when it is launched (there is no device to overlap with), so ``finish`` only
hands over what ``launch`` computed.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from posefw.arrays import to_numpy
from posefw.decoder import checked_result
from posefw.engine import Crops
from posefw.preprocess import crop_cpu


class HostRunner:
    def __init__(self, pipe: Any) -> None:
        self.pipe = pipe

    def check_frame(self, frame: Any, index: int) -> None:
        """Any checked frame works here (device frames are copied to the host)."""

    def launch(self, plan: Any) -> tuple[np.ndarray, np.ndarray] | None:
        if plan.rows == 0:
            return None
        pipe = self.pipe
        crops = np.empty((plan.rows, 3, 256, 192), np.float32)
        for j, frame in enumerate(plan.frames):
            rows = np.flatnonzero(plan.frame_of_row == j)
            crops[rows] = crop_cpu(frame.host(), plan.centers[rows], plan.scales[rows], udp=pipe.udp)
        kps, scs = [], []
        for start, n in pipe.chunks(plan.rows):
            sl = slice(start, start + n)
            kp, sc = self._run(crops[sl], plan.image_ids[sl], plan.centers[sl], plan.scales[sl])
            kps.append(kp)
            scs.append(sc)
        return np.concatenate(kps), np.concatenate(scs)

    def finish(self, plan: Any, handle: tuple[np.ndarray, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        return handle

    def _run(self, x: np.ndarray, ids: np.ndarray, centers: np.ndarray, scales: np.ndarray):
        from posefw.pipeline import flip_average

        pipe = self.pipe
        n = len(x)
        if pipe.flip_test:
            x = np.concatenate([x, x[..., ::-1]])
        crops = Crops.of_batch(ids, centers, scales, pipe.udp, pipe.flip_test)
        hm = pipe.engine.infer(np.ascontiguousarray(x), crops)
        if pipe.flip_test:
            hm = flip_average(hm, n)
        res = checked_result(pipe.decoder.decode(hm, centers, scales), pipe.decoder.name)
        return np.asarray(to_numpy(res.keypoints)), np.asarray(to_numpy(res.scores))
