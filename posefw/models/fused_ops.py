"""A custom torch op that keeps a GEMM epilogue fusion opaque to torch.compile (inductor would split it)."""

from __future__ import annotations

import torch
import torch.nn.functional as F


@torch.library.custom_op("posefw::linear_gelu_tanh", mutates_args=())
def linear_gelu_tanh(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """gelu_tanh(x @ weight.T + bias). On CUDA one cuBLASLt GEMM with the bias+GELU epilogue
    (that epilogue is the tanh form); elsewhere the same function unfused."""
    if x.is_cuda:
        y = torch._addmm_activation(bias, x.reshape(-1, x.shape[-1]), weight.t(), use_gelu=True)
        return y.reshape(*x.shape[:-1], weight.shape[0])
    return F.gelu(F.linear(x, weight, bias), approximate="tanh")


@linear_gelu_tanh.register_fake
def _(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    return x.new_empty((*x.shape[:-1], weight.shape[0]))
