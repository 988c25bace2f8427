"""The pipeline's GPU path: frames go up once as uint8, everything after happens on the device.

Per call (``launch``):
- host frames are copied into a pinned staging buffer and uploaded in one copy, each only the
  window its crops read (:func:`posefw.crop_kernel.read_windows`): on a copy stream while the
  device works on another call, else together with the box table (one copy for both); frames
  already on the GPU are read in place (their address goes into the box table);
- per box, one row of a table: the frame's address, size and strides, and the crop -> image
  matrix (vectorised NumPy, no loop per box), staged in pinned memory;
- per batch of boxes, the tables are copied into static device tables and one callable runs the
  crop kernel, the engine, the flip average and a graph-safe decoder. With an engine that
  captures CUDA graphs (``Engine.runner``) that callable is one graph replay from frames to
  keypoints; the (N, K, 3) keypoints and scores come back in one copy.
Each call in flight has a slot of staging buffers of its own, so call i+1's upload overlaps call
i's compute; ``finish`` waits for the call's event, unpacks and frees the slot. A blocking call
of one frame and one box takes a shorter way to the same graph (``quick``,
:mod:`posefw.one_box_call`).
"""

from __future__ import annotations

import contextlib
import threading
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from posefw import cudart
from posefw.arrays import framework, to_numpy
from posefw.crop_kernel import FLOAT_COLS, INT_COLS, launch, read_windows, window_row
from posefw.decoder import checked_result
from posefw.engine import Crops
from posefw.one_box_call import OneBoxCall
from posefw.pipeline import flip_average, flip_permutation

#: A call with nothing else on the device stages its frames' windows right behind its box
#: table, and both go up in one copy into a device block behind the static tables (windows of
#: up to this many bytes in all; a blocking one-box call saves a copy's launch and latency).
DIRECT_FRAME_BYTES = 4 << 20
#: A direct copy's size is rounded up to a multiple of this, so its two tensor slices are made
#: once per size and slot, not once per call (slicing is ~3 us of torch dispatch a tensor; only
#: without :mod:`posefw.cudart`, which copies from addresses).
DIRECT_ROUND = 16 << 10
#: Host frames' windows up to this size are staged by NumPy (one memcpy a row, no torch
#: dispatch); larger ones by torch, which copies on several threads.
THREADED_STAGING_BYTES = 4 << 20


def _grow(buf: Any, nbytes: int, **kw: Any) -> Any:
    """A uint8 buffer of at least ``nbytes`` (reused when big enough, else 1.5x larger)."""
    import torch

    if buf is not None and buf.numel() >= nbytes:
        return buf
    return torch.empty(max(nbytes, int(1.5 * (buf.numel() if buf is not None else 0))), dtype=torch.uint8, **kw)


class TableLayout:
    """One block of box tables for ``rows`` rows: int64 (rows, INT_COLS), float64 (rows,
    FLOAT_COLS), float32 centres (rows, 2) and scales (rows, 2), each contiguous. A batch's tables
    are staged in pinned memory in this layout and go to the device in one copy."""

    def __init__(self, rows: int) -> None:
        self.rows = rows
        self.bounds = np.cumsum([0, rows * INT_COLS * 8, rows * FLOAT_COLS * 8, rows * 8, rows * 8])
        self.nbytes = int(self.bounds[-1])

    def views(self, block: Any) -> tuple[Any, Any, Any, Any]:
        import torch

        b = self.bounds
        return (
            block[b[0] : b[1]].view(torch.int64).view(self.rows, INT_COLS),
            block[b[1] : b[2]].view(torch.float64).view(self.rows, FLOAT_COLS),
            block[b[2] : b[3]].view(torch.float32).view(self.rows, 2),
            block[b[3] : b[4]].view(torch.float32).view(self.rows, 2),
        )


@dataclass
class Slot:
    """Host and device buffers one call in flight uses; reused once that call is finished."""

    pinned_frames: Any = None
    pinned_frames_np: Any = None  # the same memory as a NumPy array (small windows are staged by NumPy)
    device_frames: Any = None
    pinned_meta: Any = None  # one TableLayout block per batch (direct calls: one, then the windows)
    pinned_meta_np: Any = None
    meta_bytes: int = 0  # pinned_meta's size, read once per buffer (a torch call costs ~1 us)
    meta_views: list = field(default_factory=list)  # per block: the block, its address and NumPy views
    direct_copies: dict = field(default_factory=dict)  # rounded size -> (device slice, pinned slice)
    pinned_out: Any = None
    pinned_out_np: Any = None
    done: Any = None  # the event after the call's last copy back
    busy: bool = False  # a launched call's results are still in it (until ``finish``)
    keep: list = field(default_factory=list)  # device frames read in place, alive until done


@dataclass
class Job:
    slot: Slot
    out: Any  # (R, K, 3) float32 view of pinned memory
    out_np: Any = None  # the same as NumPy (made before the wait, off the critical path)
    host_rows: dict = field(default_factory=dict)  # start -> (kp, sc) for decoders that are not graph-safe


class DeviceRunner:
    def __init__(self, pipe: Any) -> None:
        import torch

        self.pipe = pipe
        eng = pipe.engine
        self.device = torch.device(eng.runs_on if str(eng.runs_on).startswith("cuda") else "cuda")
        if self.device.index is None:
            self.device = torch.device("cuda", torch.cuda.current_device())
        self.dtype = getattr(torch, eng.input_dtype)
        dev = self.device
        self.layout = TableLayout(pipe.per_batch)
        ext = _round_up(self.layout.nbytes + DIRECT_FRAME_BYTES, DIRECT_ROUND)
        self.tables_ext = torch.zeros(ext, dtype=torch.uint8, device=dev)
        self.tables = self.tables_ext[: self.layout.nbytes]  # what the graphs read
        self._tables_at = self.tables.data_ptr()
        self._direct_base = self._tables_at + self.layout.nbytes  # a direct call's windows, behind the tables
        self.ints, self.floats, self.centers, self.scales = self.layout.views(self.tables)
        k = 17
        # made here: inside a graph capture no host-to-device copy may happen
        self.perm = torch.as_tensor(flip_permutation(k), device=dev) if pipe.flip_test else None
        self.copy_stream = torch.cuda.Stream(dev)
        self._lock = threading.Lock()
        self.slots: list[Slot] = []  # grows to the number of calls in flight (two for stream())
        self._steps: dict[int, Any] = {}
        # Copies and graph launches on a call's critical path go straight to the CUDA runtime
        # where torch's is found (posefw.cudart: ~15 us less a one-box call); else through torch.
        self.rt = cudart.runtime()
        self._graphs: dict[int, tuple[int, Any]] = {}  # batch size -> (cudaGraphExec_t, output)
        self._streams: dict[tuple, Any] = {}
        self._get_device = getattr(torch._C, "_cuda_getDevice", torch.cuda.current_device)  # minus a lazy-init check
        self.in_graph = bool(getattr(pipe.decoder, "graph_safe", False))
        # Batches run padded to a few sizes: one graph each, not one per box count (a graph
        # capture costs tens of ms; camera streams bring every count from 1 to the maximum).
        # Metadata engines (the oracle) render exactly the boxes they are given.
        top = pipe.per_batch
        self.sizes = [] if eng.needs_crops else sorted({s for s in (1, 2, 4, *range(8, top, 8)) if s < top} | {top})
        # the batch size n boxes run at (n <= per_batch): the next of the sizes, at most 7 spare rows
        self._padded = [next((s for s in self.sizes if s >= n), n) for n in range(top + 1)]
        #: a blocking one-box call's own path (Pipeline.__call__ tries it first)
        self.quick = OneBoxCall(self)

    def warm_up(self) -> None:
        """Capture every batch size's graph now, on a dummy frame, rather than on first use (a
        stream runner calls this before its decoder threads start)."""
        import torch

        if all(size in self._steps for size in self.sizes):
            return  # captured already (by an earlier warm-up or by calls)
        with self._lock, torch.cuda.device(self.device):
            frame = torch.zeros((16, 16, 3), dtype=torch.uint8, device=self.device)
            n = self.pipe.per_batch
            self.ints[:n, :6] = torch.tensor([frame.data_ptr(), 16, 16, 48, 3, 1], device=self.device)
            self.floats[:n] = 0
            self.floats[:n, 0] = self.floats[:n, 4] = 1.0 / 12
            self.centers[:n], self.scales[:n] = 8.0, 16.0
            for size in self.sizes:
                self._step(size)(None, None)
            torch.cuda.synchronize(self.device)

    def check_frame(self, frame: Any, index: int) -> None:
        if frame.device != "cpu" and frame.device != str(self.device):
            raise ValueError(f"frame {index}: is on {frame.device} but the engine runs on {self.device}")

    # -- one batch size's callable -----------------------------------------------------------
    def _step(self, n: int):
        """crops -> engine -> flip average -> (decoder): one engine runner per batch size n."""
        step = self._steps.get(n)
        if step is not None:
            return step
        import torch

        pipe = self.pipe
        n_eng = 2 * n if pipe.flip_test else n
        ints, floats, centers, scales = self.ints[:n], self.floats[:n], self.centers[:n], self.scales[:n]

        def pre():
            crops = torch.empty((n_eng, 3, 256, 192), dtype=self.dtype, device=self.device)
            launch(ints, floats, crops, n)
            return crops

        def post(hm):
            if pipe.flip_test:  # a CPU engine (the oracle) hands back NumPy: its own permutation then
                hm = flip_average(hm, n, self.perm if framework(hm) == "torch" else None)
            if not self.in_graph:
                return hm
            r = checked_result(pipe.decoder.decode(hm, centers, scales), pipe.decoder.name)
            return _pack(r.keypoints, r.scores)

        self._steps[n] = step = pipe.engine.runner(n_eng, pre=pre, post=post)
        graph = getattr(step, "graph", None)
        if graph is not None and graph[2] == self.device.index:
            self._graphs[n] = graph[:2]
        return step

    def _replay(self, n: int, crops: Any, stream: Any) -> Any:
        """Batch size n's callable on ``stream`` (the current one): its graph launched by the
        runtime directly where the engine's runner is one graph and posefw.cudart is loaded."""
        graph = self._graphs.get(n) if self.rt is not None and crops is None else None
        if graph is None:
            return self._step(n)(None, crops)
        self.rt.launch(graph[0], stream.cuda_stream)
        return graph[1]

    # -- a call --------------------------------------------------------------------------------
    def launch(self, plan: Any) -> Job | None:
        if plan.rows == 0:
            return None
        with self._lock:  # the static tables and graphs are shared: one call enqueues at a time
            return self._launch(plan)

    def _launch(self, plan: Any) -> Job:
        """Stage, upload, replay, copy back. Everything before a batch's replay is on a blocking
        call's critical path and kept to a few torch calls; what follows it overlaps the device."""
        import torch

        slot, overlap = None, False
        for s in self.slots:
            if not s.busy:
                if slot is None:
                    slot = s
            elif not overlap and s.done is not None and not s.done.query():
                # another call still on the device (not merely unfinished by its caller: a paused
                # stream() keeps its last call's slot busy long after the device is done with it)
                overlap = True
        if slot is None:
            slot = Slot()
            self.slots.append(slot)
        slot.busy = True  # free again once ``finish`` has read it (its last call is then done)
        compute = self._current_stream()
        rows, pipe = plan.rows, self.pipe
        chunks = pipe.chunks(rows)
        table, staged = self._frames(plan, slot, compute, overlap, direct=not overlap and len(chunks) == 1)
        self._meta(plan, slot, table, chunks)
        job = Job(slot, None)
        needs_crops = pipe.engine.needs_crops
        current = self._get_device() == self.device.index
        with contextlib.nullcontext() if current else torch.cuda.device(self.device):
            for c, (start, n) in enumerate(chunks):
                sl = slice(start, start + n)
                # the table (with ``staged``: and the windows staged behind it, in one copy)
                self._upload(slot, c, self.layout.nbytes + staged, compute)
                crops = None
                if needs_crops:  # engines that render from metadata (the oracle)
                    crops = Crops.of_batch(
                        plan.image_ids[sl], plan.centers[sl], plan.scales[sl], pipe.udp, pipe.flip_test
                    )
                res = self._replay(self._padded[n], crops, compute)
                # -- the device is busy from here: what follows is off the critical path
                if len(res) != n:
                    res = res[:n]  # the padding rows' results
                if not self.in_graph:
                    r = checked_result(pipe.decoder.decode(res, plan.centers[sl], plan.scales[sl]), pipe.decoder.name)
                    job.host_rows[start] = (np.asarray(to_numpy(r.keypoints)), np.asarray(to_numpy(r.scores)))
                    continue
                if framework(res) != "torch" or not res.is_cuda:
                    job.host_rows[start] = _unpack(np.asarray(to_numpy(res)))
                    continue
                if job.out is None:
                    k = res.shape[1]
                    nbytes = rows * k * 3 * 4
                    if slot.pinned_out is None or slot.pinned_out.numel() < nbytes:
                        slot.pinned_out = _grow(slot.pinned_out, nbytes, pin_memory=True)
                        slot.pinned_out_np = slot.pinned_out.numpy()
                    job.out = slot.pinned_out[:nbytes].view(torch.float32).view(rows, k, 3)
                    job.out_np = slot.pinned_out_np[:nbytes].view(np.float32).reshape(rows, k, 3)
                job.out[sl].copy_(res, non_blocking=True)
            if slot.done is None:
                slot.done = torch.cuda.Event()
            slot.done.record(compute)
        return job

    def finish(self, plan: Any, job: Job) -> tuple[np.ndarray, np.ndarray]:
        slot = job.slot
        slot.done.synchronize()
        slot.keep.clear()
        if job.out is not None and not job.host_rows:  # every batch decoded in its graph
            out = job.out_np.copy()  # the pinned buffer is reused by a later call
            slot.busy = False
            return out[..., :2], out[..., 2]
        chunks = self.pipe.chunks(plan.rows)
        parts: dict[int, tuple[np.ndarray, np.ndarray]] = dict(job.host_rows)
        if job.out is not None:
            out = job.out_np.copy()
            for start, n in chunks:
                if start not in parts:
                    parts[start] = _unpack(out[start : start + n])
        slot.busy = False
        kp = np.concatenate([parts[s][0] for s, _ in chunks])
        sc = np.concatenate([parts[s][1] for s, _ in chunks])
        return kp, sc

    def _frames(self, plan: Any, slot: Slot, compute: Any, overlap: bool, direct: bool) -> tuple[list, int]:
        """Per frame: device address, height, width and byte strides, as the crop kernel reads
        them; and how many bytes of windows were staged for a direct copy (0: none, or uploaded).

        Host frames are staged in pinned memory, each only the window its crops read, and
        uploaded in one copy; the table's address is then the window's, shifted back by its
        offset, so the kernel's frame coordinates and border tests are the whole frame's.
        With ``direct`` (nothing else on the device, one batch) the windows are staged behind
        the batch's table and go up with it (:data:`DIRECT_FRAME_BYTES`). Device frames are
        read in place.
        """
        import torch

        frames = plan.frames
        table: list = [None] * len(frames)
        host = []
        for j, f in enumerate(frames):
            if f.device == "cpu":
                host.append(j)
                continue
            table[j] = (f.array.data_ptr(), f.height, f.width, *f.strides)
            slot.keep.append(f.array)
        if not host:
            return table, 0
        win = plan.windows
        if win is None:
            win = read_windows(plan.matrices, plan.frame_of_row, [(f.height, f.width) for f in frames]).tolist()
        sizes = [(win[j][1] - win[j][0]) * (win[j][3] - win[j][2]) * 3 for j in host]
        total = sum(sizes)
        direct = direct and 0 < total <= DIRECT_FRAME_BYTES
        if direct:
            lead = self.layout.nbytes
            self._meta_buffer(slot, _round_up(lead + total, DIRECT_ROUND))
            pinned, pinned_np, base, at = slot.pinned_meta, slot.pinned_meta_np, self._direct_base, lead
        else:
            if slot.pinned_frames is None or slot.pinned_frames.numel() < total:
                slot.pinned_frames = _grow(slot.pinned_frames, total, pin_memory=True)
                slot.pinned_frames_np = slot.pinned_frames.numpy()
            slot.device_frames = _grow(slot.device_frames, total, device=self.device)
            pinned, pinned_np, base, at = slot.pinned_frames, slot.pinned_frames_np, slot.device_frames.data_ptr(), 0
        off = 0
        for j, size in zip(host, sizes):
            f = frames[j]
            y0, y1, x0, x1 = win[j]
            rw = x1 - x0
            table[j] = window_row(base + off, win[j], f.height, f.width)
            if size:  # (else the crops lie outside the frame: they read only the zero border)
                src = f.array[y0:y1, x0:x1]
                if size > THREADED_STAGING_BYTES and min(src.strides) >= 0:  # (torch takes no mirrored views)
                    pinned[at + off : at + off + size].view(y1 - y0, rw, 3).copy_(torch.from_numpy(src))
                else:
                    np.copyto(pinned_np[at + off : at + off + size].reshape(y1 - y0, rw, 3), src)
            off += size
        if direct:
            return table, total
        if total:
            if overlap:
                # The slot's last call is finished (finish() waited for it), so its buffer is
                # free; the copy stream does not wait for the compute stream, which is busy
                # with the call before.
                with torch.cuda.stream(self.copy_stream):
                    slot.device_frames[:total].copy_(slot.pinned_frames[:total], non_blocking=True)
                compute.wait_stream(self.copy_stream)
            else:  # nothing else on the device: a second stream would only cost launch time
                slot.device_frames[:total].copy_(slot.pinned_frames[:total], non_blocking=True)
        return table, 0

    def _meta(self, plan: Any, slot: Slot, table: list, chunks: list[tuple[int, int]]) -> None:
        """The box tables of every batch, vectorised, each a TableLayout block in pinned memory."""
        self._meta_buffer(slot, len(chunks) * self.layout.nbytes)
        one = len(table) == 1  # one frame: its row serves every box (broadcast, no gather)
        frame_rows = table[0] if one else np.array(table, np.int64)[plan.frame_of_row]
        for c, (start, n) in enumerate(chunks):
            _, _, ints, floats, centers, scales = slot.meta_views[c]
            end = start + n
            ints[:n, :6] = frame_rows if one else frame_rows[start:end]
            floats[:n, :6] = plan.matrices[start:end]
            centers[:n] = plan.centers[start:end]
            scales[:n] = plan.scales[start:end]
            pad = self._padded[n]  # padding rows repeat the first box: valid reads, results dropped
            if pad > n:
                ints[n:pad], floats[n:pad], centers[n:pad], scales[n:pad] = ints[0], floats[0], centers[0], scales[0]

    def _meta_buffer(self, slot: Slot, nbytes: int) -> None:
        """The slot's pinned block for tables (and a direct call's windows): at least ``nbytes``,
        with NumPy views of each table block made once per buffer."""
        if slot.meta_bytes >= nbytes:
            return
        lay = self.layout
        slot.pinned_meta = _grow(slot.pinned_meta, nbytes, pin_memory=True)
        slot.pinned_meta_np = slot.pinned_meta.numpy()
        slot.meta_bytes = slot.pinned_meta.numel()
        slot.direct_copies = {}
        blocks = (slot.pinned_meta[c * lay.nbytes : (c + 1) * lay.nbytes] for c in range(slot.meta_bytes // lay.nbytes))
        slot.meta_views = [(b, b.data_ptr(), *(v.numpy() for v in lay.views(b))) for b in blocks]

    def _upload(self, slot: Slot, c: int, nbytes: int, stream: Any) -> None:
        """Copy batch c's table block into the static device tables, on ``stream``; ``nbytes``
        beyond one block: a direct call's windows, staged behind its (first) block."""
        if self.rt is not None:
            self.rt.copy_to_device(self._tables_at, slot.meta_views[c][1], nbytes, stream.cuda_stream)
        elif nbytes > self.layout.nbytes:
            dst, src = self._direct_copy(slot, nbytes)
            dst.copy_(src, non_blocking=True)
        else:
            self.tables.copy_(slot.meta_views[c][0], non_blocking=True)

    def _direct_copy(self, slot: Slot, nbytes: int) -> tuple[Any, Any]:
        """Device and pinned slices of a direct copy of at least ``nbytes`` (made once per size)."""
        size = _round_up(nbytes, DIRECT_ROUND)
        pair = slot.direct_copies.get(size)
        if pair is None:
            pair = slot.direct_copies[size] = (self.tables_ext[:size], slot.pinned_meta[:size])
        return pair

    def _current_stream(self) -> Any:
        """The engine device's current stream (``torch.cuda.current_stream`` costs ~5 us a call
        in Python; the stream's id is one C call, and each stream's object is made once)."""
        import torch

        get = getattr(torch._C, "_cuda_getCurrentStream", None)
        if get is None:  # a torch without it
            return torch.cuda.current_stream(self.device)
        key = get(self.device.index)
        stream = self._streams.get(key)
        if stream is None:
            stream = self._streams[key] = torch.cuda.Stream(stream_id=key[0], device_index=key[1], device_type=key[2])
        return stream


def _round_up(n: int, step: int) -> int:
    return -(-n // step) * step


def _pack(keypoints: Any, scores: Any) -> Any:
    """(N, K, 2) + (N, K) -> (N, K, 3) float32 in the decoder's framework (one copy back later)."""
    if framework(keypoints) == "torch":
        import torch

        return torch.cat([keypoints, scores[..., None]], -1)
    kp, sc = np.asarray(to_numpy(keypoints)), np.asarray(to_numpy(scores))
    return np.concatenate([kp, sc[..., None]], -1)


def _unpack(out: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return np.ascontiguousarray(out[..., :2]), np.ascontiguousarray(out[..., 2])
