"""What one training run prunes: a method at epoch T, InfoBatch, or nothing."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from ..errors import DataPruneError
from ..methods import get
from ..mislabeled import suspect_share
from ..select import check_ratio
from .infobatch import InfoBatch
from .loop import check_record_every
from .prune_at import resolve_method_params

#: dynamic pruning schemes of ``--dynamic``
DYNAMICS = ("infobatch",)


@dataclass
class PrunePlan:
    """What a run prunes: ``method`` at ``prune_at`` (T) keeping 1 - ``prune_ratio``, or
    ``dynamic="infobatch"`` (``infobatch_ratio``, ``infobatch_delta``), or nothing."""

    prune_at: int | None = None
    method: str | None = None
    prune_ratio: float = 0.0
    params: dict[str, Any] = field(default_factory=dict)
    record_every: float = 1.0
    dynamic: str | None = None
    infobatch_ratio: float = 0.5
    infobatch_delta: float = 0.875
    mislabeled: str = "off"
    """"auto": drop the likely mislabeled samples first when the first T epochs estimate a
    label-noise rate of 10 % or more (:mod:`dataprune.mislabeled`); "off": one-sided."""

    @property
    def prunes(self) -> bool:
        """Whether this plan prunes at all (else: a full run)."""
        return self.prune_at is not None or self.dynamic is not None

    def resolved(self, epochs: int, seed: int) -> "PrunePlan":
        """This plan checked against ``epochs`` (E), with the method's defaults filled in;
        a one-line error on bad input."""
        m = check_record_every(self.record_every)
        suspect_share(0.0, self.mislabeled)  # checks the mode
        if self.mislabeled != "off" and not self.prune_at:
            raise DataPruneError(f"--drop-mislabeled {self.mislabeled} needs --prune-at T >= 1 (the T epochs "
                                 "show which labels are likely wrong); expected --drop-mislabeled off")
        if self.dynamic is not None:
            if self.dynamic not in DYNAMICS:
                raise DataPruneError(f"--dynamic {self.dynamic!r}; expected one of {list(DYNAMICS)}")
            if self.prune_at is not None:
                raise DataPruneError("--dynamic and --prune-at exclude each other; expected one of them")
            InfoBatch(1, epochs, ratio=self.infobatch_ratio, delta=self.infobatch_delta)  # checks
            return self
        if self.prune_at is None:
            return self
        if isinstance(self.prune_at, bool) or not isinstance(self.prune_at, int) or not 0 <= self.prune_at < epochs:
            raise DataPruneError(f"--prune-at {self.prune_at} with --epochs {epochs}; expected 0 <= T < {epochs} "
                                 "(T epochs on the full set, then E-T on the subset)")
        check_ratio(self.prune_ratio)
        if not self.prune_ratio > 0:
            raise DataPruneError(f"--prune-ratio {self.prune_ratio}; expected a fraction in (0, 1) to remove")
        if self.method is None:
            raise DataPruneError("--prune-at needs --method")
        get(self.method)
        params = resolve_method_params(self.method, self.prune_at, m, params=self.params, seed=seed)
        return dataclasses.replace(self, params=params)

    def signals(self) -> list[str]:
        """Signals the T scoring epochs record for ``method``."""
        assert self.method is not None
        return list(dict.fromkeys(("prob", "correct", *get(self.method).needs)))

    def to_dict(self) -> dict[str, Any]:
        """The plan as JSON-able fields; ``mislabeled`` only when not "off", so a plan means
        the same dict (and bench cell key) as before the field existed."""
        out = dataclasses.asdict(self)
        if out["mislabeled"] == "off":
            del out["mislabeled"]
        return out
