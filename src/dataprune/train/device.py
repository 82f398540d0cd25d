"""Where and how a run trains: the device, mixed precision (``torch.autocast`` and
``torch.amp.GradScaler``), ``channels_last``, ``torch.compile`` and the
``DistributedDataParallel`` wrapper. Runtime options only: none of them changes what a
configuration means, except the precision, which is a training setting (``TrainConfig``)."""
from __future__ import annotations

import contextlib
import os
from typing import ContextManager

import torch
from torch import nn

from ..errors import DataPruneError

PRECISIONS = ("fp32", "bf16", "fp16")
_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def resolve_device(name: str | None = None) -> torch.device:
    """The device to train on: ``name`` ("cpu", "cuda", "cuda:N"), or by default CUDA when
    available, else the CPU. Under torchrun, "cuda" means this rank's GPU (``LOCAL_RANK``)."""
    if name is None:
        name = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError):
        raise DataPruneError(f"--device {name!r}; expected cpu, cuda or cuda:N") from None
    if device.type not in ("cpu", "cuda"):
        raise DataPruneError(f"--device {name!r}; expected cpu, cuda or cuda:N")
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise DataPruneError(f"--device {name}: CUDA is not available here; use --device cpu")
        if device.index is None:
            device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        if device.index >= torch.cuda.device_count():
            raise DataPruneError(f"--device {device}: this machine has {torch.cuda.device_count()} GPU(s)")
    return device


def check_precision(precision: str, device: torch.device) -> None:
    """Refuse an unknown precision, and fp16 off CUDA (autocast on the CPU has no fp16 path
    that GradScaler guards; use bf16 there)."""
    if precision not in PRECISIONS:
        raise DataPruneError(f"--precision {precision!r}; expected one of {', '.join(PRECISIONS)}")
    if precision == "fp16" and device.type != "cuda":
        raise DataPruneError(f"--precision fp16 needs a CUDA device (this run trains on {device}); "
                             "use --precision bf16 or fp32")


def autocast(device: torch.device, precision: str) -> ContextManager:
    """``torch.autocast`` in ``precision`` on ``device`` (nothing for fp32)."""
    if precision == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=_DTYPES[precision])


def grad_scaler(device: torch.device, precision: str) -> torch.amp.GradScaler:
    """A loss scaler, enabled for fp16 on CUDA only (bf16 and fp32 need none)."""
    return torch.amp.GradScaler(device.type, enabled=precision == "fp16" and device.type == "cuda")


def unwrap(model: nn.Module) -> nn.Module:
    """The user's model inside a DistributedDataParallel and/or ``torch.compile`` wrapper."""
    while True:
        if isinstance(model, nn.parallel.DistributedDataParallel):
            model = model.module
        elif hasattr(model, "_orig_mod"):  # torch.compile's OptimizedModule
            model = model._orig_mod
        else:
            return model


def has_conv(model: nn.Module) -> bool:
    return any(isinstance(m, nn.modules.conv._ConvNd) for m in model.modules())


def prepare_model(net: nn.Module, device: torch.device, *, world_size: int = 1,
                  compile: bool = False) -> nn.Module:
    """Move ``net`` to ``device`` (``channels_last`` for conv nets on CUDA) and return the
    module to train: ``net`` itself, wrapped in ``DistributedDataParallel`` when
    ``world_size`` > 1 (gradients averaged in buckets, overlapped with the backward pass;
    rank 0's weights and buffers broadcast), and compiled with ``torch.compile`` when
    ``compile``. Checkpoint and evaluate ``net``; its parameters are the trained ones."""
    net.to(device)
    if device.type == "cuda" and has_conv(net):
        net.to(memory_format=torch.channels_last)
    model = net
    if world_size > 1:
        model = nn.parallel.DistributedDataParallel(
            net, device_ids=[device.index] if device.type == "cuda" else None)
    if compile:
        model = torch.compile(model)
    return model
