"""Per-batch signal values from logits and targets: the maths of each recorded signal.

Each function of :data:`SIGNALS` maps a :class:`Batch` (B rows) to (B,) float32 values.
"""
from __future__ import annotations

from typing import Callable

import torch

#: exp(x) of float32 is subnormal below x = -87.3, and subnormals slow CPU arithmetic tenfold
#: or more; logits further than this below their row's max give probability exp(-87) = 1.6e-38
_EXP_FLOOR = -87.0


class Batch:
    """What the signals of one batch are computed from: ``logits`` (B, C) float32, ``y``
    targets (B,) int64, ``max`` and ``min`` of each row (B,), ``exp`` = exp(max(logits -
    max, -87)) (B, C) and ``total`` its row sums (B,); the softmax ``p`` (B, C) = exp / total
    is formed only when a signal needs all of it.

    Softmax from its pieces rather than ``torch.softmax``: ``prob`` needs one entry per row,
    and on CPU (B=256, C=1000, one thread) max + exp + sum cost 0.8x ``torch.softmax`` for
    logits with a spread of a few units, and 1/13 of it when the spread passes 87, where
    ``torch.softmax`` computes subnormals (``benchmarks/recorder_update_scale.py``).
    """

    def __init__(self, logits: torch.Tensor, y: torch.Tensor):
        self.logits, self.y = logits, y
        self.max, self.min = logits.amax(1), logits.amin(1)  # NaN propagates; one read of logits
        self.exp = (logits - self.max[:, None]).clamp_min_(_EXP_FLOOR).exp_()
        self.total = self.exp.sum(1)
        self._p: torch.Tensor | None = None

    @property
    def p(self) -> torch.Tensor:
        """Softmax (B, C)."""
        if self._p is None:
            self._p = self.exp / self.total[:, None]
        return self._p


def prob(b: Batch) -> torch.Tensor:
    """Labelled-class softmax probability exp[y] / total (bit for bit ``p[y]``)."""
    return b.exp.gather(1, b.y[:, None])[:, 0] / b.total


#: B*C up to which ``correct`` searches every row on CPU too (see there)
_SEARCH_ALL_SIZE = 2**17


def correct(b: Batch, *, search_all: bool | None = None) -> torch.Tensor:
    """1.0 where the labelled class is the row's first maximum (as ``argmax``), else 0.0.

    On CPU, max(1) with indices costs ~6x amax(1) and host checks are free: a row is correct
    iff its labelled logit equals the max, unless the max is tied in an earlier column. A
    tie puts two entries exp(0) = 1 in the row, so only rows with total >= 2 (less rounding),
    i.e. labelled-class probability <= 1/2, can have one; those rows alone get an index
    search. ``search_all`` searches every row instead: the default on devices other than the
    CPU (no host sync) and for small batches (B*C <= 2^17), where one search costs less than
    the ops that avoid it (one thread, B = 256: 0.11 vs 0.15 ms per update at C = 10, 0.15 vs
    0.16 at C = 100, 0.54 vs 0.46 at C = 1000).
    """
    if search_all is None:
        search_all = b.logits.device.type != "cpu" or b.logits.numel() <= _SEARCH_ALL_SIZE
    if search_all:
        return (b.logits.max(1).indices == b.y).to(torch.float32)
    correct = b.logits.gather(1, b.y[:, None])[:, 0] == b.max
    two = 2.0 - b.logits.shape[1] * 2.0**-22  # 2 less a bound on the sums' rounding error
    maybe_tied = correct & (b.total >= two)
    if maybe_tied.any():
        rows = maybe_tied.nonzero()[:, 0]
        correct[rows] = b.logits[rows].max(1).indices == b.y[rows]
    return correct.to(torch.float32)


def margin(b: Batch) -> torch.Tensor:
    """Labelled-class logit minus the largest other logit (Pleiss et al.'s AUM margin)."""
    own = b.logits.gather(1, b.y[:, None])[:, 0]
    other = b.logits.scatter(1, b.y[:, None], float("-inf")).amax(1)
    return own - other


def el2n(b: Batch) -> torch.Tensor:
    """L2 norm of softmax minus one-hot (Paul et al.)."""
    onehot = torch.nn.functional.one_hot(b.y, b.p.shape[1]).to(b.p.dtype)
    return (b.p - onehot).norm(dim=1)


def entropy(b: Batch) -> torch.Tensor:
    """Predictive entropy in nats."""
    return -(b.p * torch.log_softmax(b.logits, 1)).sum(1)


def grand(b: Batch, features: torch.Tensor) -> torch.Tensor:
    """Exact last-layer gradient norm (weight and bias) of the cross-entropy loss:
    ||softmax - onehot|| * ||[features, 1]||, ``features`` (B, D) the last layer's input."""
    h = features.to(b.logits.device, torch.float32)
    return el2n(b) * (h.square().sum(1) + 1).sqrt()


#: updates of a Recorder whose logits are probed for probabilities (see
#: :func:`looks_like_probabilities`) until one batch of at least 2 rows was probed
PROBE_UPDATES = 16


def looks_like_probabilities(b: Batch, eps: float) -> bool:
    """Whether every row of the batch lies in [0, 1] and sums to 1 within ``1e-3 + eps``
    (``eps``: the input dtype's machine epsilon; a sum of C values each rounded by eps/2 of
    itself is off by at most eps/2), and not every row is one-hot: softmax outputs passed
    as logits. Real logits fall there with negligible probability. One host sync.

    E.g. rows [0.2, 0.8] and [0.5, 0.5] -> True; [0.2, 0.7] (sum 0.9) or [-1, 2] -> False;
    [0, 1] and [1, 0] (all one-hot) -> False."""
    sums = b.logits.sum(1)
    rows = (b.min >= 0) & (b.max <= 1) & ((sums - 1).abs() <= 1e-3 + eps)
    return bool((rows.all() & (b.max < 1).any()).item())


#: signal name -> function of a :class:`Batch` -> (B,) float32
SIGNALS: dict[str, Callable[[Batch], torch.Tensor]] = {
    "prob": prob, "correct": correct, "margin": margin, "el2n": el2n, "entropy": entropy,
}
DEFAULT_SIGNALS = ("prob", "correct")
ALL_SIGNALS = tuple(SIGNALS)
#: signals computed from more than the batch's logits (not in "all"):
#: ``grand`` needs ``update(..., features=h)``, the penultimate features (B, D);
#: ``tdds_d`` keeps the previous epoch's log-softmax, an (N, C) float16 buffer (N*C*2 bytes)
#: plus (N,) int32 epoch stamps on the logits' device. Under torch.distributed that state
#: is merged across ranks in every end_epoch (O(N*C) traffic), so ranks may see any sample.
EXTRA_SIGNALS = ("grand", "tdds_d")
