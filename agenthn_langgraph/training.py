"""What every training loop here shares: the learning-rate schedule, per-step seeding, checkpoints.

The base trainer of the tiny default and the hypernetwork trainer both use these, so there is one
schedule and one checkpoint format, not two copies.

Checkpoints are our own ``torch.save`` of tensors and plain Python values, read back with
``weights_only=True``: resuming never unpickles arbitrary objects.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import gc
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch


@dataclass(frozen=True)
class CosineSchedule:
    """Linear warm-up to ``lr``, then a cosine decay to ``floor * lr`` at ``steps``.

    >>> s = CosineSchedule(lr=1.0, warmup=10, steps=110, floor=0.1)
    >>> s(0), s(9), round(s(60), 3), round(s(110), 3)
    (0.1, 1.0, 0.55, 0.1)
    """

    lr: float
    warmup: int
    steps: int
    floor: float = 0.1

    def __call__(self, step: int) -> float:
        if step < self.warmup:
            return self.lr * (step + 1) / self.warmup
        p = min(1.0, (step - self.warmup) / max(1, self.steps - self.warmup))
        return self.lr * (self.floor + (1 - self.floor) * 0.5 * (1 + math.cos(math.pi * p)))

    def apply(self, optimizer: torch.optim.Optimizer, step: int) -> float:
        """Set every param group's lr for ``step`` (a group's ``lr_scale`` multiplies it)."""
        lr = self(step)
        for group in optimizer.param_groups:
            group["lr"] = lr * group.get("lr_scale", 1.0)
        return lr


def step_seed(seed: int, step: int, *, stream: int = 0) -> int:
    """Seed of one training step's data: resuming at any step replays the same batches.

    ``stream`` separates independent uses of one run seed (the base's data, the hypernetwork's).
    """
    return (seed * 1_000_003 + stream) * 10_000_019 + step


def save_checkpoint(
    path: str | os.PathLike[str],
    *,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    step: int,
    extra: Mapping[str, Any] | None = None,
) -> Path:
    """Write model + optimizer state + step atomically (temp file, then rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    torch.save(
        {"model": model.state_dict(), "opt": optimizer.state_dict(), "step": int(step), "extra": dict(extra or {})},
        tmp,
    )
    os.replace(tmp, path)
    return path


def load_checkpoint(
    path: str | os.PathLike[str],
    *,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer | None = None,
    map_location: str | torch.device = "cpu",
) -> tuple[int, dict[str, Any]]:
    """Restore what :func:`save_checkpoint` wrote; returns ``(step, extra)``. Never unpickles objects."""
    state = torch.load(path, map_location=map_location, weights_only=True)
    model.load_state_dict(state["model"])
    if optimizer is not None:
        optimizer.load_state_dict(state["opt"])
    return int(state["step"]), dict(state.get("extra", {}))


def return_freed_memory() -> None:
    """Hand freed heap pages back to the OS (glibc only; a no-op elsewhere).

    Training batches differ in shape every step, and glibc's allocator keeps the freed blocks of
    each shape in its arenas: a CPU run's resident memory grew ~17 MB/step (11 GB by step 780)
    without this, although the live tensors stayed the same size.
    """
    gc.collect()
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


@functools.cache
def _malloc_trim() -> Any:
    """glibc's ``malloc_trim``, looked up once (``find_library`` runs ``ldconfig``), or None."""
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        return getattr(ctypes.CDLL(name), "malloc_trim", None)
    except OSError:
        return None


def frozen_base_dtype(choice: str, device: torch.device) -> torch.dtype:
    """The dtype to hold a frozen base in while training a hypernetwork on ``device``.

    ``"auto"``: bfloat16 on CUDA; on a CPU, bfloat16 only where it measures faster than fp32 (CPUs
    with AVX-512 BF16 or AMX run bf16 matmuls ~2x faster; without them, bf16 is emulated and tens
    of times slower). The base is cast once, not re-cast per call as autocast would.
    """
    if choice == "float32":
        return torch.float32
    if choice == "bfloat16":
        return torch.bfloat16
    if choice != "auto":
        raise ValueError(f"base dtype must be auto, float32 or bfloat16, got {choice!r}")
    if device.type == "cuda":
        return torch.bfloat16
    return torch.bfloat16 if cpu_bf16_speedup() > 1.25 else torch.float32


@functools.cache
def cpu_bf16_speedup() -> float:
    """fp32 time / bf16 time of the same matmul on this CPU, measured once (~0.1 s)."""
    import time

    times = {}
    for dtype in (torch.float32, torch.bfloat16):
        a, b = torch.randn(256, 576, dtype=dtype), torch.randn(576, 512, dtype=dtype)
        a @ b
        start = time.perf_counter()
        for _ in range(3):
            a @ b
        times[dtype] = time.perf_counter() - start
    return times[torch.float32] / max(times[torch.bfloat16], 1e-9)
