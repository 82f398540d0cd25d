"""Checks of what a user passes the Recorder: its labels, each batch, and the flags of rows
that an epoch refused (out-of-range indices or targets, NaN/inf logits)."""
from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ..errors import DataPruneError
from .signals import EXTRA_SIGNALS, SIGNALS, Batch, looks_like_probabilities


def check_labels(labels: Any, n: int, c: int) -> np.ndarray:
    """(N,) int64 labels in 0..C-1; integral floats are accepted, NaN, inf, fractions,
    booleans and non-numbers refused (a cast would store garbage such as INT64_MIN)."""
    labels = np.asarray(labels)
    if labels.shape != (n,):
        raise DataPruneError(f"labels have shape {labels.shape}; expected ({n},)")
    if labels.dtype == bool or not (np.issubdtype(labels.dtype, np.integer)
                                    or np.issubdtype(labels.dtype, np.floating)):
        raise DataPruneError(f"labels have dtype {labels.dtype}; expected integer class labels 0..{c - 1}")
    if np.issubdtype(labels.dtype, np.floating):
        bad = ~np.isfinite(labels) | (labels != np.round(labels))
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise DataPruneError(f"labels hold {int(bad.sum())} non-integer or non-finite values "
                                 f"(labels[{i}]={labels[i]}); expected integer class labels 0..{c - 1}")
    if labels.size and (labels.min() < 0 or labels.max() >= c):
        raise DataPruneError(f"labels lie in [{labels.min():g}, {labels.max():g}]; expected 0..{c - 1}")
    return labels.astype(np.int64)


def check_settings(num_samples: int, num_classes: int, signals: Any, view: str, nan_policy: str,
                   labels: Any, resumed: Any = None) -> tuple[list[str], np.ndarray | None]:
    """``(signals, labels)`` of a new Recorder, after checking its arguments: distinct known
    signal names (``resumed``: the path of a resumed store, named if it records others) and
    labels (see :func:`check_labels`)."""
    if int(num_samples) < 1:
        raise DataPruneError(f"num_samples={num_samples}; expected at least 1")
    if int(num_classes) < 2:
        raise DataPruneError(f"num_classes={num_classes}; expected at least 2")
    signals = list(dict.fromkeys(signals))
    known = list(SIGNALS) + list(EXTRA_SIGNALS)
    unknown = [s for s in signals if s not in known]
    if resumed is not None and unknown:
        raise DataPruneError(f"store {resumed} records signal(s) {unknown} this Recorder cannot compute; "
                             f"it knows {known}")
    if unknown or not signals:
        raise DataPruneError(f"signals={signals}; expected a non-empty subset of {known}")
    if view not in ("train", "clean"):
        raise DataPruneError(f"view={view!r}; expected 'train' or 'clean'")
    if nan_policy not in ("raise", "omit"):
        raise DataPruneError(f"nan_policy={nan_policy!r}; expected 'raise' or 'omit'")
    if labels is not None:
        labels = check_labels(labels, int(num_samples), int(num_classes))
    return signals, labels


def refuse_probabilities(batch: Batch, eps: float) -> None:
    """Raise if the batch's logits look like probabilities (see :func:`looks_like_probabilities`)."""
    if looks_like_probabilities(batch, eps):
        raise DataPruneError(
            "logits look like probabilities (every row of the batch lies in [0, 1] and sums "
            "to 1), which would record softmax(probabilities), about 1/C for every sample; "
            "pass the model's raw outputs (logits, before softmax), or torch.log(probabilities)")


def check_batch(indices: Any, logits: torch.Tensor, targets: Any, features: torch.Tensor | None,
                num_classes: int, needs_features: bool
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """``(indices, targets, features)`` as tensors on the logits' device, after checking the
    shapes (B,), (B, C), (B,) and (B, D) (``features`` only when ``needs_features``: the
    ``grand`` signal) and the dtypes (floating logits, integer indices and targets)."""
    device = logits.device
    indices = torch.as_tensor(indices, device=device)
    targets = torch.as_tensor(targets, device=device)
    if logits.ndim != 2 or logits.shape[1] != num_classes:
        wide = (f": the model has {logits.shape[1]} outputs, so num_classes must be "
                f"{logits.shape[1]}" if logits.ndim == 2 else "")
        raise DataPruneError(f"logits have shape {tuple(logits.shape)}; expected (B, {num_classes}) "
                             f"for num_classes={num_classes}{wide}")
    if not logits.is_floating_point():
        raise DataPruneError(f"logits have dtype {logits.dtype}; expected floating-point logits")
    if indices.ndim != 1 or targets.ndim != 1 or not (
            len(indices) == len(targets) == logits.shape[0]):
        raise DataPruneError(f"batch sizes differ: indices {tuple(indices.shape)}, "
                             f"logits {tuple(logits.shape)}, targets {tuple(targets.shape)}; "
                             "expected (B,), (B, C), (B,)")
    if needs_features:
        if features is None:
            raise DataPruneError("signal 'grand' needs the penultimate features: call "
                                 "update(indices, logits, targets, features=h) with h (B, D)")
        features = features.detach()
        if features.ndim != 2 or features.shape[0] != logits.shape[0]:
            raise DataPruneError(f"features have shape {tuple(features.shape)}; "
                                 f"expected ({logits.shape[0]}, D)")
    for name, t in (("indices", indices), ("targets", targets)):
        if t.is_floating_point() or t.is_complex() or t.dtype == torch.bool:
            raise DataPruneError(f"{name} have dtype {t.dtype}; expected an integer dtype")
    return indices, targets, features


def raise_if_bad(bad: torch.Tensor, num_samples: int, num_classes: int, nan_policy: str,
                 indices: torch.Tensor | None = None, targets: torch.Tensor | None = None) -> None:
    """Raise for the flags ``bad`` (3,) bool: an index out of 0..N-1, a target out of 0..C-1,
    a row with NaN/inf logits (unless ``nan_policy`` is ``"omit"``); ``indices`` and
    ``targets`` (B,), when given, name the range seen."""
    idx_bad, y_bad, nan_bad = bad.tolist()
    if idx_bad:
        detail = f" (got {indices.min().item()}..{indices.max().item()})" if indices is not None else ""
        raise DataPruneError(f"sample indices out of range{detail}; expected 0..{num_samples - 1}")
    if y_bad:
        detail = f" (got {targets.min().item()}..{targets.max().item()})" if targets is not None else ""
        raise DataPruneError(f"targets out of range{detail}; expected 0..{num_classes - 1}")
    if nan_bad and nan_policy == "raise":
        raise DataPruneError("logits contain NaN or inf; the model diverged (try a lower learning "
                             "rate, or pass nan_policy='omit' to leave those samples unobserved)")


def refuse_empty_epoch(labels_seen: np.ndarray | None, recordings: int) -> None:
    """Raise if no sample was recorded this epoch (``labels_seen`` (N,), -1 = unseen)."""
    if labels_seen is None or not (labels_seen >= 0).any():
        raise DataPruneError(
            f"end_epoch(): nothing was recorded in epoch {recordings} (no update() since the last "
            "end_epoch(), or every row had NaN/inf logits under nan_policy='omit'); an epoch in "
            "which no sample is observed is not written - call update() with its batches first")
