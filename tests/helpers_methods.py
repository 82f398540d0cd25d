"""Shared builders for the method tests: small stores written from plain arrays."""
from __future__ import annotations

import numpy as np
import torch

import dataprune as dp
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
