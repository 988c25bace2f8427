"""Register and shared-memory use of numba-full's kernel on this GPU (for docs/benchmarks.md)."""

from __future__ import annotations

import numpy as np
from numba import cuda
from posefw.plugins.numba_kernels import build_kernel


def main() -> None:
    kern = build_kernel(11, 128)
    hm = cuda.to_device(np.random.rand(2, 17, 64, 48).astype(np.float32))
    kp, sc = cuda.device_array((2, 17, 2), np.float32), cuda.device_array((2, 17), np.float32)
    dummy = cuda.to_device(np.zeros((1, 2), np.float32))
    parts = cuda.device_array((1, 9), np.float32)
    kern[34, 128](hm, 0, 0, kp, sc, parts, dummy, dummy, False)
    cuda.synchronize()
    print("numba-full kernel: registers", kern.get_regs_usage(), "local bytes/thread", kern.get_local_mem_per_thread(),
          "shared bytes/block", kern.get_shared_mem_per_block())


if __name__ == "__main__":
    main()
