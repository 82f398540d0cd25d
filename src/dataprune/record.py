"""Recording training dynamics: ``(indices, logits, targets)`` per batch -> dynamics store."""
from __future__ import annotations

import os
from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np
import torch

from .errors import DataPruneError
from .store import SIGNAL_DTYPES, StoreWriter, missing_value


class WithIndex(torch.utils.data.Dataset):
    """Wrap a dataset so item ``i`` becomes ``(*base[i], i)``: the sample index rides along."""

    def __init__(self, base: Sequence[Any]):
        self.base = base

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, i: int) -> tuple:
        item = self.base[i]
        return (*item, i) if isinstance(item, tuple) else (item, i)


def _prob(p: torch.Tensor, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return p.gather(1, y[:, None])[:, 0]


def _correct(p: torch.Tensor, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return (logits.argmax(1) == y).to(torch.float32)


def _margin(p: torch.Tensor, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Labelled-class logit minus the largest other logit (Pleiss et al.'s AUM margin)."""
    own = logits.gather(1, y[:, None])[:, 0]
    other = logits.scatter(1, y[:, None], float("-inf")).amax(1)
    return own - other


def _el2n(p: torch.Tensor, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """L2 norm of softmax minus one-hot (Paul et al.)."""
    onehot = torch.nn.functional.one_hot(y, p.shape[1]).to(p.dtype)
    return (p - onehot).norm(dim=1)


def _entropy(p: torch.Tensor, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Predictive entropy in nats."""
    return -(p * torch.log_softmax(logits, 1)).sum(1)


#: signal name -> function of (softmax (B, C), logits (B, C), targets (B,)) -> (B,) float32
SIGNALS: dict[str, Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]] = {
    "prob": _prob, "correct": _correct, "margin": _margin, "el2n": _el2n, "entropy": _entropy,
}
DEFAULT_SIGNALS = ("prob", "correct")
ALL_SIGNALS = tuple(SIGNALS)


class Recorder:
    """Record per-sample signals each epoch into a memory-mapped dynamics store.

    Parameters
    ----------
    num_samples : int
        N, the size of the training set; sample indices are 0..N-1.
    out : path
        Store directory to create (refused if it holds a store, unless ``force``).
    num_classes : int
        C; targets must lie in 0..C-1.
    signals : names from :data:`SIGNALS`; ``prob`` (labelled-class probability) and
        ``correct`` by default.
    epochs : planned number of epochs K (the store's capacity; it grows if exceeded).
    view : ``"train"`` or ``"clean"``, recorded in ``meta.json`` for provenance.
    labels : optional (N,) labels known up front; otherwise taken from the targets seen.
    nan_policy : ``"raise"`` (default) rejects NaN/inf logits; ``"omit"`` leaves those
        samples unobserved for the epoch.

    Values for one epoch stay on the logits' device (no host sync per step) in O(N)
    buffers and are written to disk once per epoch by :meth:`end_epoch`.
    """

    def __init__(self, num_samples: int, out: str | os.PathLike, num_classes: int, *,
                 signals: Iterable[str] = DEFAULT_SIGNALS, epochs: int | None = None,
                 view: str = "train", labels: np.ndarray | None = None,
                 nan_policy: str = "raise", meta: Mapping[str, Any] | None = None,
                 force: bool = False):
        if int(num_samples) < 1:
            raise DataPruneError(f"num_samples={num_samples}; expected at least 1")
        if int(num_classes) < 2:
            raise DataPruneError(f"num_classes={num_classes}; expected at least 2")
        signals = list(dict.fromkeys(signals))
        unknown = [s for s in signals if s not in SIGNALS]
        if unknown or not signals:
            raise DataPruneError(f"signals={signals}; expected a non-empty subset of {list(SIGNALS)}")
        if view not in ("train", "clean"):
            raise DataPruneError(f"view={view!r}; expected 'train' or 'clean'")
        if nan_policy not in ("raise", "omit"):
            raise DataPruneError(f"nan_policy={nan_policy!r}; expected 'raise' or 'omit'")
        if labels is not None:
            labels = np.asarray(labels)
            if labels.shape != (int(num_samples),):
                raise DataPruneError(f"labels have shape {labels.shape}; expected ({num_samples},)")
            if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
                raise DataPruneError(f"labels lie in [{labels.min()}, {labels.max()}]; "
                                     f"expected 0..{num_classes - 1}")
        self.num_samples = int(num_samples)
        self.num_classes = int(num_classes)
        self.signals = signals
        self.nan_policy = nan_policy
        self.epoch = 0
        self._writer = StoreWriter(out, num_samples=self.num_samples, num_classes=self.num_classes,
                                   signals=signals, capacity=epochs or 64, view=view,
                                   labels=labels, extra_meta=meta, force=force)
        self._buffers: dict[str, torch.Tensor] | None = None
        self._bad: torch.Tensor | None = None

    @classmethod
    def resume(cls, out: str | os.PathLike, *, epochs: int | None = None,
               fingerprint: str | None = None, nan_policy: str = "raise") -> "Recorder":
        """Reopen the store at ``out`` and continue recording after its first ``epochs`` epochs.

        ``epochs`` (default: all the store holds) and ``fingerprint`` are those saved with the
        training checkpoint being resumed; an extra epoch written after that checkpoint is
        discarded (see :meth:`~dataprune.store.StoreWriter.open_existing`). Labels first seen
        in a discarded epoch stay in ``labels.npy``.
        """
        if nan_policy not in ("raise", "omit"):
            raise DataPruneError(f"nan_policy={nan_policy!r}; expected 'raise' or 'omit'")
        writer = StoreWriter.open_existing(out, epochs=epochs, fingerprint=fingerprint)
        unknown = [s for s in writer.signals if s not in SIGNALS]
        if unknown:
            raise DataPruneError(f"store {writer.path} records signal(s) {unknown} this Recorder "
                                 f"cannot compute; it knows {list(SIGNALS)}")
        self = cls.__new__(cls)
        self.num_samples = writer.num_samples
        self.num_classes = int(writer.meta["num_classes"])
        self.signals = list(writer.signals)
        self.nan_policy = nan_policy
        self.epoch = int(writer.meta["epochs"])
        self._writer = writer
        self._buffers = None
        self._bad = None
        return self

    @property
    def path(self) -> os.PathLike:
        return self._writer.path

    @property
    def fingerprint(self) -> str:
        """Fingerprint of the store after the last written epoch (see ``Dynamics.fingerprint``)."""
        return str(self._writer.meta["fingerprint"])

    def _allocate(self, device: torch.device) -> None:
        # One extra slot at index N absorbs writes we must discard (see update).
        n = self.num_samples + 1
        self._buffers = {s: torch.full((n,), float("nan"), device=device) for s in self.signals}
        self._buffers["labels"] = torch.full((n,), -1, dtype=torch.int64, device=device)
        self._bad = torch.zeros(3, dtype=torch.bool, device=device)

    def update(self, indices: torch.Tensor | np.ndarray | Sequence[int], logits: torch.Tensor,
               targets: torch.Tensor | np.ndarray | Sequence[int]) -> None:
        """Record one batch: ``indices`` (B,) sample indices, ``logits`` (B, C), ``targets`` (B,).

        Accepts tensors on any device. If an index appears twice in one epoch, the last
        value wins; samples never passed in an epoch stay unobserved.
        """
        logits = logits.detach()
        device = logits.device
        indices = torch.as_tensor(indices, device=device)
        targets = torch.as_tensor(targets, device=device)
        if logits.ndim != 2 or logits.shape[1] != self.num_classes:
            raise DataPruneError(f"logits have shape {tuple(logits.shape)}; "
                                 f"expected (B, {self.num_classes})")
        if indices.ndim != 1 or targets.ndim != 1 or not (
                len(indices) == len(targets) == logits.shape[0]):
            raise DataPruneError(f"batch sizes differ: indices {tuple(indices.shape)}, "
                                 f"logits {tuple(logits.shape)}, targets {tuple(targets.shape)}; "
                                 "expected (B,), (B, C), (B,)")
        for name, t in (("indices", indices), ("targets", targets)):
            if t.is_floating_point() or t.is_complex() or t.dtype == torch.bool:
                raise DataPruneError(f"{name} have dtype {t.dtype}; expected an integer dtype")
        if self._buffers is None:
            self._allocate(device)
        buf = self._buffers
        indices, targets = indices.to(buf["labels"].device, torch.int64), targets.to(buf["labels"].device, torch.int64)
        logits = logits.to(buf["labels"].device, torch.float32)

        n = self.num_samples
        idx_ok = (indices >= 0) & (indices < n)
        y_ok = (targets >= 0) & (targets < self.num_classes)
        finite = torch.isfinite(logits).all(1)
        bad = torch.stack([~idx_ok.all(), ~y_ok.all(), ~finite.all()])
        if device.type == "cpu":
            self._raise_if_bad(bad, indices, targets)
        else:
            self._bad |= bad  # checked once per epoch, in end_epoch: no host sync here
        keep = idx_ok & y_ok & finite
        y = torch.where(y_ok, targets, 0)
        # Last occurrence of each index in this batch wins; other occurrences and rejected
        # rows are redirected to the spare slot N, so duplicate writes never race.
        pos = torch.arange(len(indices), device=indices.device)
        safe = torch.where(keep, indices, n)
        last = torch.full((n + 1,), -1, dtype=torch.int64, device=indices.device)
        last.scatter_reduce_(0, safe, pos, reduce="amax")
        dest = torch.where(keep & (last[safe] == pos), safe, n)

        p = torch.softmax(torch.where(finite[:, None], logits, 0.0), 1)
        for s in self.signals:
            buf[s][dest] = SIGNALS[s](p, logits, y)
        buf["labels"][dest] = y

    def _raise_if_bad(self, bad: torch.Tensor, indices: torch.Tensor | None = None,
                      targets: torch.Tensor | None = None) -> None:
        idx_bad, y_bad, nan_bad = bad.tolist()
        if idx_bad:
            detail = f" (got {indices.min().item()}..{indices.max().item()})" if indices is not None else ""
            raise DataPruneError(f"sample indices out of range{detail}; expected 0..{self.num_samples - 1}")
        if y_bad:
            detail = f" (got {targets.min().item()}..{targets.max().item()})" if targets is not None else ""
            raise DataPruneError(f"targets out of range{detail}; expected 0..{self.num_classes - 1}")
        if nan_bad and self.nan_policy == "raise":
            raise DataPruneError("logits contain NaN or inf; fix the model or pass nan_policy='omit' "
                                 "to leave those samples unobserved")

    def epoch_values(self) -> dict[str, np.ndarray]:
        """This epoch's (N,) arrays per signal, plus ``labels``, on the host (one sync)."""
        out = {}
        for s in self.signals:
            row = self._buffers[s][: self.num_samples].cpu().numpy().copy()
            dtype = SIGNAL_DTYPES[s]
            if np.issubdtype(dtype, np.integer):
                row = np.where(np.isnan(row), missing_value(dtype), row)
            out[s] = row.astype(dtype)
        out["labels"] = self._buffers["labels"][: self.num_samples].cpu().numpy().copy()
        return out

    def end_epoch(self) -> int:
        """Write the finished epoch to the store; returns the number of epochs recorded."""
        if self._buffers is None:
            rows = {s: np.full(self.num_samples, missing_value(SIGNAL_DTYPES[s]),
                               SIGNAL_DTYPES[s]) for s in self.signals}
            labels = None
        else:
            if self._bad.device.type != "cpu":
                self._raise_if_bad(self._bad.cpu())
            rows = self.epoch_values()
            labels = rows.pop("labels")
            for b in self._buffers.values():
                b.fill_(float("nan") if b.is_floating_point() else -1)
        self.epoch = self._writer.write_epoch(rows, labels)
        return self.epoch

    def close(self) -> None:
        """Release buffers; the store on disk is already complete after each ``end_epoch``."""
        self._buffers = None

    def __enter__(self) -> "Recorder":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
