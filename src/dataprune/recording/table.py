"""One epoch's recorded values on the logits' device, before they are written to the store."""
from __future__ import annotations

from typing import Mapping

import numpy as np
import torch

from ..store import SIGNAL_DTYPES, missing_value
from .signals import SIGNALS, Batch, grand
from .tdds import TddsState


def last_occurrence_dest(safe: torch.Tensor, spare: int) -> torch.Tensor:
    """Write positions (B,) for a batch's sample indices ``safe`` (B,): each index's last
    occurrence keeps it, earlier duplicates go to the ``spare`` slot, so no two rows write
    the same real slot. O(B log B) (a stable sort), no host sync, nothing of size N.

    E.g. safe = [4, 1, 4, spare], spare = 9 -> [9, 1, 4, 9]."""
    ordered, order = torch.sort(safe, stable=True)  # equal indices keep batch order
    # each sorted entry but the last: spare if the next one repeats it (the last entry of
    # the sort is always the last of its run, so safe already holds it)
    head = ordered[:-1]
    return safe.scatter(0, order[:-1], torch.where(head == ordered[1:], spare, head))


class EpochTable:
    """One (N+1, S+1) float32 table, a row per sample: its S signals, then its label's int32
    bits (-1 = unseen); row N is a spare slot that absorbs discarded writes. The S+1 writes of
    one sample share a cache line: at N = 14.2M a batch costs one cache miss per sample, not
    S+1 (benchmarks/recorder_update_scale.py). Also holds ``bad`` (3,) bool, the flags of
    refused rows (index, target, non-finite) not yet raised, and the ``tdds_d`` state.
    """

    def __init__(self, num_samples: int, num_classes: int, signals: list[str], device: torch.device,
                 carried: Mapping[str, torch.Tensor] | None = None):
        self.num_samples, self.signals = num_samples, signals
        rows = num_samples + 1
        table = torch.full((rows, len(signals) + 1), float("nan"), device=device)
        #: signal name (and "labels") -> its (N+1,) column of the table
        self.columns = {s: table[:, j] for j, s in enumerate(signals)}
        self.columns["labels"] = table[:, -1].view(torch.int32).fill_(-1)
        self.bad = torch.zeros(3, dtype=torch.bool, device=device)
        # (2, 1) each: the smallest and largest valid sample index and target (place's clamp)
        self.range = (torch.zeros((2, 1), dtype=torch.int64, device=device),
                      torch.tensor([[num_samples - 1], [num_classes - 1]], device=device))
        self.tdds = TddsState(rows, num_classes, device, carried) if "tdds_d" in signals else None

    @property
    def device(self) -> torch.device:
        return self.columns["labels"].device

    def place(self, indices: torch.Tensor, targets: torch.Tensor, logits: torch.Tensor
              ) -> tuple[Batch, torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(batch, finite, ok, dest)`` of a batch on this table's device: ``finite`` (B,)
        rows with finite logits, ``ok`` (3, B) index in range, target in range, finite, and
        ``dest`` (B,) the row each writes (refused rows and earlier duplicates: slot N)."""
        n = self.num_samples
        pair = torch.stack([indices, targets])  # (2, B)
        clamped = pair.clamp(*self.range)
        in_range = clamped == pair  # (2, B): index in 0..N-1, target in 0..C-1
        batch = Batch(logits, clamped[1])  # an out-of-range target's row goes to the spare slot N
        # A row is finite iff total + min is: NaN in a row makes max and total NaN, +inf
        # makes total NaN (inf - inf), -inf makes min -inf; else total <= C and the sum cannot
        # overflow. At B*C = 256k on CPU, amin(1) takes ~1/20 of isfinite(logits).all(1).
        finite = (batch.total + batch.min).isfinite()
        ok = torch.cat([in_range, finite[None]])
        dest = last_occurrence_dest(torch.where(ok.all(0), indices, n), n)
        return batch, finite, ok, dest

    def write(self, dest: torch.Tensor, batch: Batch, finite: torch.Tensor,
              features: torch.Tensor | None, recording: int) -> None:
        """Write each signal of ``batch`` and its labels at rows ``dest`` (see :meth:`place`);
        rows are independent: a non-finite row spoils only its own values, sent to slot N."""
        for s in self.signals:
            if s == "grand":
                self.columns[s][dest] = grand(batch, features)
            elif s == "tdds_d":
                safe = torch.where(finite[:, None], batch.logits, 0.0)
                self.tdds.record(self.columns[s], dest, safe, batch.p, recording)
            else:
                self.columns[s][dest] = SIGNALS[s](batch)
        self.columns["labels"][dest] = batch.y.to(torch.int32)

    def labels_seen(self) -> np.ndarray:
        """(N,) int32 on the host: each sample's label, -1 where unseen (one sync)."""
        return self.columns["labels"][: self.num_samples].cpu().numpy()

    def host_values(self) -> dict[str, np.ndarray]:
        """This epoch's (N,) arrays per signal in the store's dtypes, plus ``labels`` (N,)
        int64, on the host (one sync)."""
        out = {}
        for s in self.signals:
            row = self.columns[s][: self.num_samples].cpu().numpy().copy()
            dtype = SIGNAL_DTYPES[s]
            if np.issubdtype(dtype, np.integer):
                row = np.where(np.isnan(row), missing_value(dtype), row)
            out[s] = row.astype(dtype)
        out["labels"] = self.labels_seen().astype(np.int64)
        return out

    def clear(self) -> None:
        """Mark every sample unseen again, for the next epoch (the ``tdds_d`` state stays)."""
        for b in self.columns.values():
            b.fill_(float("nan") if b.is_floating_point() else -1)
