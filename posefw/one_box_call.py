"""A blocking call of one frame and one box on the GPU path, without a plan: the latency path.

Such a call is latency-bound: every microsecond of host work before the graph launch adds to
the ~0.45 ms graph. The general path (plan -> launch -> finish) spends ~68 us there on an
H200's host (runs 27-29), most of it Python over NumPy arrays and objects made for many boxes.
Here the same steps run for one box in Python floats (:mod:`posefw.one_box`: the same doubles
as the vectorised functions), the table row is packed straight into pinned memory with
precompiled structs, the box's window is staged behind it, and one copy, the graph launch and
the copy back go through the CUDA runtime (:mod:`posefw.cudart`). The result is read from
pinned memory into arrays made while the device works.

It answers only what it can answer as the general path would, to the bit (same table, same
window, same graph); anything else returns None and the caller takes the general path: a box
that fails its checks (the general path names it), a frame that is not RGB uint8 (the checks
are :mod:`posefw.frames`' own), another call in flight, a graph not captured yet, no runtime, a
decoder outside the graph.
"""

from __future__ import annotations

import math
import struct
from typing import Any

import numpy as np

from posefw import one_box
from posefw.crop_kernel import window_row
from posefw.frames import as_boxes, as_frame
from posefw.pipeline import PoseResult, not_finite

_INTS, _FLOATS, _PAIR = struct.Struct("<6q"), struct.Struct("<6d"), struct.Struct("<2f")
_TRUE = np.ones(1, bool)


class OneBoxCall:
    """Made once per :class:`~posefw.device_runner.DeviceRunner`; holds a pinned block of its
    own (table, then the window) and the addresses it copies between."""

    def __init__(self, runner: Any) -> None:
        from posefw.device_runner import DIRECT_FRAME_BYTES, _grow

        self.runner, self.limit, self._grow = runner, DIRECT_FRAME_BYTES, _grow
        self.index = runner.device.index
        self.lead = runner.layout.nbytes  # the table block; the window goes behind it
        self.at = tuple(int(b) for b in runner.layout.bounds[:4])  # row 0 of each table
        self.block = self.block_np = None
        self.block_at = self.block_bytes = 0
        self.out = None  # pinned (K, 3) float32, made on the first call; K keypoints
        self.out_kp = self.out_sc = None  # NumPy views of it: (1, K, 2) keypoints, (1, K) scores
        self.out_at = self.graph_out_at = self.k = 0  # its address, the graph output's
        self.done = None
        self.busy = False  # a call's copies or result still use the pinned memory
        self.streams: dict[int, int] = {}  # id of the runner's stream object -> its cudaStream_t

    def start(self, frames: list, boxes: list, image_ids: Any) -> Any:
        """Everything up to the graph launch and the copy back; None where the general path
        must answer. The caller holds nothing: on None, no state was changed."""
        r = self.runner
        if len(frames) != 1 or len(boxes) != 1 or (image_ids is not None and len(image_ids) != 1):
            return None
        graph = r._graphs.get(1) if r.rt is not None and r.in_graph else None
        if graph is None or r._get_device() != self.index:
            return None
        b = as_boxes(boxes[0], 0)  # raises as the general path would
        if len(b) != 1:
            return None
        try:
            frame = as_frame(frames[0], 0)
            r.check_frame(frame, 0)
        except (TypeError, ValueError):
            return None  # the general path reports the frame
        height, width = frame.height, frame.width
        x, y, w, h = b.tolist()[0]
        if one_box.box_code(x, y, w, h, height, width):
            return None  # the general path names the box
        cx, cy, sw, sh = one_box.center_scale(x, y, w, h)
        m = one_box.crop_matrix(cx, cy, sw, sh, r.pipe.udp)
        if frame.device == "cpu":
            window = y0, y1, x0, x1 = one_box.clip_window(*one_box.read_window(m), height, width)
            size = (y1 - y0) * (x1 - x0) * 3
            if size > self.limit:
                return None
            row = window_row(r._direct_base, window, height, width)
        else:
            size, row = 0, (frame.array.data_ptr(), height, width, *frame.strides)
        with r._lock:
            if self.busy:
                return None  # its pinned block is still in use (another thread's call)
            for slot in r.slots:
                if slot.busy:
                    return None  # a call in flight (stream(), submit()): the general path orders it
            need = self.lead + size
            if need > self.block_bytes or self.out is None:
                if not self._buffers(need, graph[1]):
                    return None
            self.busy = True
            try:
                buf = self.block_np
                if size:  # (else the crop lies outside the frame: it reads only the zero border)
                    np.copyto(buf[self.lead : need].reshape(y1 - y0, x1 - x0, 3), frame.array[y0:y1, x0:x1])
                ints, floats, centers, scales = self.at
                _INTS.pack_into(buf, ints, *row)
                _FLOATS.pack_into(buf, floats, *m)
                _PAIR.pack_into(buf, centers, cx, cy)
                _PAIR.pack_into(buf, scales, sw, sh)
                stream = r._current_stream()
                raw = self.streams.get(id(stream))  # (the runner keeps each stream object alive)
                if raw is None:
                    raw = self.streams[id(stream)] = stream.cuda_stream
                rt = r.rt
                rt.copy_to_device(r._tables_at, self.block_at, need, raw)
                rt.launch(graph[0], raw)
                rt.copy_to_host(self.out_at, self.graph_out_at, self.k * 12, raw)
                self.done.record(stream)
            except BaseException:
                self.busy = False
                raise
        # the device is busy from here
        kp = np.empty((1, self.k, 2), np.float32)
        sc = np.empty((1, self.k), np.float32)
        return kp, sc, frames[0]  # (a device frame stays alive until the device has read it)

    def finish(self, token: Any) -> list:
        """Wait for the device and read the keypoints; the result is what the general path
        gives for the same call (one PoseResult, an error for non-finite keypoints)."""
        kp, sc, _ = token
        try:
            self.done.synchronize()
            np.copyto(kp, self.out_kp)
            np.copyto(sc, self.out_sc)
        finally:
            self.busy = False
        valid = _TRUE.copy()
        if math.isfinite(kp.sum(dtype=np.float64)):  # (34 float32 values cannot overflow a double)
            return [PoseResult(kp, sc, valid, [])]
        valid[0], kp[0], sc[0] = False, np.nan, np.nan
        return [PoseResult(kp, sc, valid, [not_finite(0, 0)])]

    def __call__(self, frames: list, boxes: list, image_ids: Any = None) -> list | None:
        token = self.start(frames, boxes, image_ids)
        return None if token is None else self.finish(token)

    def _buffers(self, need: int, graph_out: Any) -> bool:
        """The pinned block for the table and window (``need`` bytes, grown as needed); on the
        first call the pinned output and the graph output's address. False where the graph's
        output is not one (1, K, 3) float32 block to copy back as it is."""
        import torch

        if self.out is None:
            shape = tuple(graph_out.shape)
            if graph_out.dtype != torch.float32 or len(shape) != 3 or shape[::2] != (1, 3):
                return False
            if not graph_out.is_contiguous():
                return False
            k = self.k = shape[1]
            self.out = self._grow(None, k * 12, pin_memory=True)[: k * 12].view(torch.float32).view(k, 3)
            o = self.out.numpy()
            self.out_kp, self.out_sc, self.out_at = o[None, :, :2], o[None, :, 2], self.out.data_ptr()
            self.graph_out_at = graph_out.data_ptr()  # static: the graph writes it every replay
            self.done = torch.cuda.Event()
        if need > self.block_bytes:
            self.block = self._grow(self.block, need, pin_memory=True)
            self.block_np = self.block.numpy()
            self.block_at = self.block.data_ptr()
            self.block_bytes = len(self.block_np)
        return True
