"""The warning, once, about samples that no recording has seen after a whole epoch."""
from __future__ import annotations

import numpy as np

from ..logs import get_logger

_log = get_logger("record")


class CoverageCheck:
    """Collects the samples seen by each recording (``seen`` (N,) bool, all ranks merged).

    A sample unseen by every recording so far is reported as soon as a recording adds no new
    sample to them: with ``record_every`` = 1/m (m recordings per training epoch, each seeing
    1/m of the data) or DDP shards, that first happens after a full epoch, so partial
    recordings never trigger it. Samples never seen get NaN scores later. Reported once, as a
    warning on the ``dataprune.record`` logger.
    """

    def __init__(self, num_samples: int, num_classes: int):
        self.num_samples, self.num_classes = num_samples, num_classes
        #: (N,) bool: samples seen by any recording so far; None before the first recording
        #: and once the check is done (all seen, or warned: "once")
        self._coverage: np.ndarray | None = None
        self._done = False

    def add(self, seen: np.ndarray) -> None:
        """Add one recording's ``seen`` (N,) bool; warn if it is the first to add nothing."""
        if self._done:
            return
        if self._coverage is None:
            self._coverage = seen.copy()
            return
        grew = bool((seen & ~self._coverage).any())
        self._coverage |= seen
        if self._coverage.all():  # every sample seen: nothing left to check, no O(N) pass per epoch
            self._done, self._coverage = True, None
            return
        if grew:
            return
        self._done = True
        n, c = self.num_samples, self.num_classes
        seen_idx = np.flatnonzero(self._coverage)
        unseen = n - len(seen_idx)
        hint = (f"; every index seen is < num_classes={c}: the index column looks like the labels, "
                "not sample indices" if n > c and seen_idx[-1] < c else "")
        _log.warning(
            f"warning: Recorder.end_epoch(): {unseen} of {n} samples were never seen in a full epoch (indices "
            f"seen: {len(seen_idx)}, in {seen_idx[0]}..{seen_idx[-1]}){hint}; they will get NaN scores. "
            f"Check num_samples={n} (the training set's size), that update() gets sample indices "
            "0..N-1 (dataprune.WithIndex), and that the sampler visits every sample (drop_last, a subset)")
        self._coverage = None
