"""InfoBatch (Qin et al., "InfoBatch: Lossless Training Speed Up by Unbiased Dynamic Data
Pruning", ICLR 2024): dynamic pruning by the previous epoch's losses.

Each sample keeps its last training loss (3.0 before it is first seen, as the authors'
code). At the start of every pruned epoch, the "well-learned" samples are those whose
stored loss is strictly below the mean over all N stored losses; ``floor((1 - ratio) * W)``
of those W are kept, drawn uniformly without replacement (seeded by ``(seed, epoch)``),
together with every other sample, and the loss of each kept well-learned sample is
multiplied by ``1 / (1 - ratio)`` so the expected gradient is unchanged (the batch loss
is the mean of the weighted per-sample losses, as their ``update``). Epochs
``e >= floor(delta * E)`` use the full set with weight 1 (the last 12.5 % with
``delta = 0.875``; the authors' code prunes while ``e + 1 <= delta * E``, the same rule).
Paper and code agree on these defaults (ratio 0.5, delta 0.875).

Hand-computed case: stored losses [0.1, 0.2, 0.9, 1.0] (mean 0.55), ratio 0.5: the
well-learned samples are {0, 1}; one of them is kept, with weight 2; samples 2, 3 always.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from ..errors import DataPruneError

INITIAL_LOSS = 3.0


class InfoBatch:
    """Per-epoch sample sets and loss weights of InfoBatch over N samples and E epochs.

    ``epoch_indices(epoch)`` -> the (M,) int64 sample indices of that epoch (ascending; the
    loader shuffles); ``loss(logits (B, C), y (B,), idx (B,))`` -> the weighted mean loss,
    storing each sample's un-weighted loss for the next epoch's pruning.
    """

    def __init__(self, num_samples: int, epochs: int, *, ratio: float = 0.5, delta: float = 0.875,
                 seed: int = 0) -> None:
        if not 0.0 <= ratio < 1.0:
            raise DataPruneError(f"infobatch ratio={ratio}; expected a number in [0, 1)")
        if not 0.0 <= delta <= 1.0:
            raise DataPruneError(f"infobatch delta={delta}; expected a number in [0, 1]")
        self.num_samples, self.epochs, self.ratio, self.delta, self.seed = num_samples, epochs, ratio, delta, seed
        self.scores = torch.full((num_samples,), INITIAL_LOSS)
        self.weights = torch.ones(num_samples)

    @property
    def stop_prune(self) -> int:
        """First epoch trained on the full set."""
        return math.floor(self.delta * self.epochs)

    def epoch_indices(self, epoch: int) -> np.ndarray:
        """Sample indices of ``epoch`` (and the loss weights :meth:`loss` will use)."""
        self.weights.fill_(1.0)
        if epoch >= self.stop_prune:
            return np.arange(self.num_samples, dtype=np.int64)
        scores = self.scores.numpy()
        well = np.flatnonzero(scores < scores.mean())
        rng = np.random.default_rng(np.random.SeedSequence([self.seed, epoch, 0x1B]))
        kept_well = rng.choice(well, int((1.0 - self.ratio) * len(well)), replace=False)
        if len(kept_well):
            self.weights[torch.from_numpy(kept_well)] = 1.0 / (1.0 - self.ratio)
        keep = np.ones(self.num_samples, dtype=bool)
        keep[well] = False
        keep[kept_well] = True
        return np.flatnonzero(keep).astype(np.int64)

    def loss(self, logits: Tensor, y: Tensor, idx: Tensor) -> Tensor:
        per_sample = nn.functional.cross_entropy(logits, y, reduction="none")
        cpu_idx = idx.cpu()
        self.scores[cpu_idx] = per_sample.detach().float().cpu()
        return (per_sample * self.weights[cpu_idx].to(per_sample.device)).mean()

    def state_dict(self) -> dict[str, Any]:
        return {"scores": self.scores.clone(), "weights": self.weights.clone()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.scores, self.weights = state["scores"].clone(), state["weights"].clone()
