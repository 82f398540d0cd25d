"""Shared builders for the method tests: small stores written from plain arrays, and the
registered methods grouped by what they read (tests loop over the registry, not over names)."""
from __future__ import annotations

import inspect

import numpy as np
import torch

import dataprune as dp
from dataprune.methods import get_method as get
from dataprune.store import StoreWriter


def write_store(path, signals: dict[str, np.ndarray], labels: np.ndarray, num_classes: int):
    """A store at ``path`` holding the given (K, N) arrays (float NaN / int -1 = unobserved)."""
    k = next(iter(signals.values())).shape[0]
    w = StoreWriter(path, num_samples=len(labels), num_classes=num_classes,
                    signals=list(signals), capacity=k, labels=labels)
    for e in range(k):
        w.write_epoch({s: a[e] for s, a in signals.items()})
    return dp.Dynamics.open(path)


def logits_for(p_true: np.ndarray, targets: np.ndarray, num_classes: int) -> torch.Tensor:
    """Logits whose softmax gives p_true to the target class and the rest uniformly."""
    n = len(targets)
    probs = np.tile(((1 - p_true) / (num_classes - 1))[:, None], (1, num_classes))
    probs[np.arange(n), targets] = p_true
    return torch.tensor(np.log(probs), dtype=torch.float32)


# --- the registry, for tests that loop over every method ----------------------------------------
def dynamics_methods() -> list[str]:
    """Registered methods that read per-epoch signals of the store (their ``needs``)."""
    return [name for name in dp.list_methods() if get(name).needs]


def methods_reading(file: str) -> list[str]:
    """Registered methods that read the run-directory ``file`` (e.g. ``features.npy``)."""
    return [name for name in dp.list_methods() if file in get(name).files]


def needed_signals() -> list[str]:
    """Every signal some registered method reads, with ``prob`` and ``correct`` (the defaults)."""
    return sorted({"prob", "correct"}.union(*(get(name).needs for name in dp.list_methods())))


def with_window(name: str, window: int) -> dict[str, int]:
    """``{"window": window}`` for a method that takes a window, else ``{}``."""
    return {"window": window} if "window" in inspect.signature(get(name).fn).parameters else {}
