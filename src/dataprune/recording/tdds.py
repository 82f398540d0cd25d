"""The state the ``tdds_d`` signal carries from one epoch to the next, and its step d_t."""
from __future__ import annotations

from typing import Mapping

import torch

from ..errors import DataPruneError


def check_state_size(n: int, c: int, world_size: int, limit: int) -> None:
    """Refuse a ``tdds_d`` state (N, C) needing more than ``limit`` bytes of device memory
    (N*C*2, plus N*C*8 for the merge under torch.distributed)."""
    need = n * c * (2 + (8 if world_size > 1 else 0))
    if need > limit:
        raise DataPruneError(
            f"signal 'tdds_d' with N={n}, C={c}{f', {world_size} ranks' if world_size > 1 else ''} "
            f"needs {need / 2**30:.1f} GiB of device memory for its per-sample softmax state; "
            f"expected at most {limit / 2**30:.1f} GiB "
            f"(dataprune.record.TDDS_D_STATE_LIMIT): drop 'tdds_d' (TDDS) at this scale")


class TddsState:
    """Per sample (N+1 rows, the last one a spare slot): ``prev_logp`` (N+1, C) float16, the
    log-softmax of its last recording, and ``prev_epoch`` (N+1,) int32, that recording's
    number (-2 = never seen). ``carried``: a :meth:`state_dict` to start from."""

    def __init__(self, rows: int, num_classes: int, device: torch.device,
                 carried: Mapping[str, torch.Tensor] | None = None):
        self.prev_logp = torch.zeros((rows, num_classes), dtype=torch.float16, device=device)
        self.prev_epoch = torch.full((rows,), -2, dtype=torch.int32, device=device)
        if carried:
            self.prev_logp[:-1] = carried["tdds_prev_logp"].to(device)
            self.prev_epoch[:-1] = carried["tdds_prev_epoch"].to(device)

    def record(self, column: torch.Tensor, dest: torch.Tensor, safe_logits: torch.Tensor,
               p: torch.Tensor, k: int) -> None:
        """Write d_t = sum_c p_t,c |log p_t,c - log p_t-1,c| of recording ``k`` into ``column``
        at ``dest`` (B,) (``safe_logits`` (B, C) finite, ``p`` their softmax); the first
        occurrence of a sample in a recording wins, later ones go to the spare slot."""
        n = len(self.prev_epoch) - 1
        # both epochs' log-probs rounded to float16 alike: an unchanged softmax gives d = 0
        logp = torch.log_softmax(safe_logits, 1).clamp_min(-1e4).to(torch.float16)
        stamp = self.prev_epoch[dest]
        d = (p * (logp.float() - self.prev_logp[dest].float()).abs()).sum(1)
        d = torch.where(stamp == k - 1, d, float("nan"))
        dest = torch.where(stamp == k, n, dest)  # already seen this epoch: keep the first
        column[dest] = d
        self.prev_logp[dest] = logp
        self.prev_epoch[dest] = k

    def state_dict(self) -> dict[str, torch.Tensor]:
        """The state of the N samples as CPU tensors (the spare slot left out)."""
        return {"tdds_prev_logp": self.prev_logp[:-1].cpu(), "tdds_prev_epoch": self.prev_epoch[:-1].cpu()}
