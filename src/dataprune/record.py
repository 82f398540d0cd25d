"""Recording training dynamics: ``(indices, logits, targets)`` per batch -> dynamics store."""
from __future__ import annotations

import os
from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np
import torch

from .errors import DataPruneError
from .logs import get_logger
from .store import KEEP_HISTORY, SIGNAL_DTYPES, Dynamics, RingStoreWriter, StoreWriter, missing_value


def _pick_owner(values: torch.Tensor, mine: torch.Tensor) -> torch.Tensor:
    """float32 ``values`` as int32 bit patterns where ``mine``, else INT32_MIN: after an
    all_reduce MAX every entry holds its owner's exact bits (NaN and -0.0 included)."""
    lowest = torch.iinfo(torch.int32).min
    return torch.where(mine, values.contiguous().view(torch.int32), lowest)


def _dist_rank_world() -> tuple[int, int]:
    """(rank, world size) of the default torch.distributed group, or (0, 1) without one."""
    dist = torch.distributed
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def _last_occurrence_dest(safe: torch.Tensor, spare: int) -> torch.Tensor:
    """Write positions (B,) for a batch's sample indices ``safe`` (B,): each index's last
    occurrence keeps it, earlier duplicates go to the ``spare`` slot, so no two rows write
    the same real slot. O(B log B) (a stable sort), no host sync, nothing of size N.

    E.g. safe = [4, 1, 4, spare], spare = 9 -> [9, 1, 4, 9]."""
    ordered, order = torch.sort(safe, stable=True)  # equal indices keep batch order
    # each sorted entry but the last: spare if the next one repeats it (the last entry of
    # the sort is always the last of its run, so safe already holds it)
    head = ordered[:-1]
    return safe.scatter(0, order[:-1], torch.where(head == ordered[1:], spare, head))


class WithIndex(torch.utils.data.Dataset):
    """Wrap a dataset so item ``i`` becomes ``(*base[i], i)``: the sample index rides along."""

    def __init__(self, base: Sequence[Any]):
        self.base = base

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, i: int) -> tuple:
        item = self.base[i]
        return (*item, i) if isinstance(item, tuple) else (item, i)


_log = get_logger("record")

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


def _prob(b: Batch) -> torch.Tensor:
    """Labelled-class softmax probability exp[y] / total (bit for bit ``p[y]``)."""
    return b.exp.gather(1, b.y[:, None])[:, 0] / b.total


#: B*C up to which ``_correct`` searches every row on CPU too (see there)
_SEARCH_ALL_SIZE = 2**17


def _correct(b: Batch, *, search_all: bool | None = None) -> torch.Tensor:
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


def _margin(b: Batch) -> torch.Tensor:
    """Labelled-class logit minus the largest other logit (Pleiss et al.'s AUM margin)."""
    own = b.logits.gather(1, b.y[:, None])[:, 0]
    other = b.logits.scatter(1, b.y[:, None], float("-inf")).amax(1)
    return own - other


def _el2n(b: Batch) -> torch.Tensor:
    """L2 norm of softmax minus one-hot (Paul et al.)."""
    onehot = torch.nn.functional.one_hot(b.y, b.p.shape[1]).to(b.p.dtype)
    return (b.p - onehot).norm(dim=1)


def _entropy(b: Batch) -> torch.Tensor:
    """Predictive entropy in nats."""
    return -(b.p * torch.log_softmax(b.logits, 1)).sum(1)


#: updates of a Recorder whose logits are probed for probabilities (see
#: :func:`_looks_like_probabilities`) until one batch of at least 2 rows was probed
_PROBE_UPDATES = 16


def _looks_like_probabilities(b: Batch, eps: float) -> bool:
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
    "prob": _prob, "correct": _correct, "margin": _margin, "el2n": _el2n, "entropy": _entropy,
}
DEFAULT_SIGNALS = ("prob", "correct")
ALL_SIGNALS = tuple(SIGNALS)
#: signals computed in Recorder.update from more than one batch's logits (not in "all"):
#: ``grand`` needs ``update(..., features=h)``, the penultimate features (B, D);
#: ``tdds_d`` keeps the previous epoch's log-softmax, an (N, C) float16 buffer (N*C*2 bytes)
#: plus (N,) int32 epoch stamps on the logits' device. Under torch.distributed that state
#: is merged across ranks in every end_epoch (O(N*C) traffic), so ranks may see any sample.
EXTRA_SIGNALS = ("grand", "tdds_d")
#: bytes of device memory ``tdds_d`` may use for its state (N*C*2, plus N*C*8 for the merge
#: under torch.distributed); larger runs are refused up front instead of failing with an
#: out-of-memory error mid-epoch. Raise it if your device has the room.
TDDS_D_STATE_LIMIT = 16 * 2**30


def _check_tdds_d_state(n: int, c: int, world_size: int) -> None:
    """Refuse a ``tdds_d`` state (N, C) larger than :data:`TDDS_D_STATE_LIMIT`."""
    need = n * c * (2 + (8 if world_size > 1 else 0))
    if need > TDDS_D_STATE_LIMIT:
        raise DataPruneError(
            f"signal 'tdds_d' with N={n}, C={c}{f', {world_size} ranks' if world_size > 1 else ''} "
            f"needs {need / 2**30:.1f} GiB of device memory for its per-sample softmax state; "
            f"expected at most {TDDS_D_STATE_LIMIT / 2**30:.1f} GiB "
            f"(dataprune.record.TDDS_D_STATE_LIMIT): drop 'tdds_d' (TDDS) at this scale")


def _check_labels(labels: Any, n: int, c: int) -> np.ndarray:
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
    signals : names from :data:`SIGNALS` or :data:`EXTRA_SIGNALS`; ``prob`` (labelled-class
        probability) and ``correct`` by default.
    epochs : planned number of epochs K (the store's capacity; it grows if exceeded). The
        store counts as finished once it holds K epochs (or after :meth:`finish`); without
        ``epochs`` only :meth:`finish` (or leaving a ``with`` block) marks it finished.
    view : ``"train"`` or ``"clean"``, recorded in ``meta.json`` for provenance.
    labels : optional (N,) labels known up front; otherwise taken from the targets seen.
    nan_policy : ``"raise"`` (default) rejects NaN/inf logits; ``"omit"`` leaves those
        samples unobserved for the epoch.
    keep_history : ``"full"`` (default) keeps every epoch, (K, N) per signal; ``"none"`` keeps
        only what Dyn-Unc with ``window`` needs (the last J+1 epochs of ``prob`` and running
        sums: O(N*J) memory and disk, independent of K); such a store scores only
        ``dyn-unc`` with that window.
    window : J for ``keep_history="none"`` (ignored otherwise).

    Notes
    -----
    Distributed (``torchrun``, DDP): construct and call the recorder identically on every
    rank, each rank passing its own batches. Once per epoch, :meth:`end_epoch` merges the
    ranks' buffers with collectives on the default process group (every rank must call it);
    only rank 0 creates and writes the store, other ranks never touch the disk. A sample
    seen by several ranks in one epoch (DistributedSampler pads with duplicates) gets the
    value of the highest rank that saw it, i.e. the result equals one process recording the
    ranks' batches in rank order (last wins; for ``tdds_d``, whose first occurrence wins, the
    lowest rank); samples no rank saw stay unobserved.

    Values for one epoch stay on the logits' device (no host sync per step) in one (N+1, S+1)
    table allocated once (S signals and the label per sample, 4 bytes each) and are written
    to disk once per epoch by :meth:`end_epoch`; :meth:`update` costs O(B log B) per batch
    of B, independent of N.
    """

    def __init__(self, num_samples: int, out: str | os.PathLike, num_classes: int, *,
                 signals: Iterable[str] = DEFAULT_SIGNALS, epochs: int | None = None,
                 view: str = "train", labels: np.ndarray | None = None,
                 nan_policy: str = "raise", meta: Mapping[str, Any] | None = None,
                 force: bool = False, keep_history: str = "full", window: int = 10):
        if int(num_samples) < 1:
            raise DataPruneError(f"num_samples={num_samples}; expected at least 1")
        if int(num_classes) < 2:
            raise DataPruneError(f"num_classes={num_classes}; expected at least 2")
        signals = list(dict.fromkeys(signals))
        unknown = [s for s in signals if s not in SIGNALS and s not in EXTRA_SIGNALS]
        if unknown or not signals:
            raise DataPruneError(f"signals={signals}; expected a non-empty subset of "
                                 f"{list(SIGNALS) + list(EXTRA_SIGNALS)}")
        if view not in ("train", "clean"):
            raise DataPruneError(f"view={view!r}; expected 'train' or 'clean'")
        if nan_policy not in ("raise", "omit"):
            raise DataPruneError(f"nan_policy={nan_policy!r}; expected 'raise' or 'omit'")
        if labels is not None:
            labels = _check_labels(labels, int(num_samples), int(num_classes))
        if keep_history not in KEEP_HISTORY:
            raise DataPruneError(f"keep_history={keep_history!r}; expected one of {KEEP_HISTORY}")
        if keep_history == "none":
            if signals != ["prob"] and tuple(signals) != tuple(DEFAULT_SIGNALS):
                raise DataPruneError(f"signals={signals} with keep_history='none'; that mode "
                                     "records only 'prob' (what Dyn-Unc needs)")
            signals = ["prob"]
        self.num_samples = int(num_samples)
        self.num_classes = int(num_classes)
        self.signals = signals
        self.nan_policy = nan_policy
        self.epoch = 0
        self.rank, self.world_size = _dist_rank_world()
        if "tdds_d" in signals:
            _check_tdds_d_state(self.num_samples, self.num_classes, self.world_size)
        self._out = out
        self._writer: StoreWriter | RingStoreWriter | None = None
        if self.rank == 0:  # other ranks never touch the disk
            common = dict(num_samples=self.num_samples, num_classes=self.num_classes, view=view,
                          labels=labels, extra_meta=meta, force=force, planned_epochs=epochs)
            if keep_history == "none":
                self._writer = RingStoreWriter(out, window=window, **common)
            else:
                self._writer = StoreWriter(out, signals=signals, capacity=epochs or 64, **common)
        self._start_session()

    def _start_session(self) -> None:
        """Per-process state, empty at construction and on :meth:`resume`: the device table,
        the carried ``tdds_d`` state, the probability probe and the coverage check."""
        self._buffers: dict[str, torch.Tensor] | None = None
        self._bad: torch.Tensor | None = None
        self._carried_state: dict[str, torch.Tensor] | None = None
        self._probe_left = _PROBE_UPDATES
        #: (N,) bool on the host: samples seen by any recording so far (rank 0), None before
        #: the first end_epoch and once the check is done (all seen, or warned: "once")
        self._coverage: np.ndarray | None = None
        self._coverage_done = False

    @classmethod
    def resume(cls, out: str | os.PathLike, *, epochs: int | None = None,
               fingerprint: str | None = None, nan_policy: str = "raise") -> "Recorder":
        """Reopen the store at ``out`` and continue recording after its first ``epochs`` epochs.

        ``epochs`` (default: all the store holds) and ``fingerprint`` are those saved with the
        training checkpoint being resumed; an extra epoch written after that checkpoint is
        discarded (see :meth:`~dataprune.store.StoreWriter.open_existing`, which verifies
        the store's content first). Labels first seen in a discarded epoch stay in ``labels.npy``.
        """
        if nan_policy not in ("raise", "omit"):
            raise DataPruneError(f"nan_policy={nan_policy!r}; expected 'raise' or 'omit'")
        dyn = Dynamics.open(out)
        if dyn.keep_history != "full":
            raise DataPruneError(f"store {dyn.path} was recorded with keep_history={dyn.keep_history!r}; "
                                 "Recorder.resume continues full-history stores only (record it again, "
                                 "or with keep_history='full')")
        del dyn
        writer = StoreWriter.open_existing(out, epochs=epochs, fingerprint=fingerprint)
        known = list(SIGNALS) + list(EXTRA_SIGNALS)
        unknown = [s for s in writer.signals if s not in known]
        if unknown:
            raise DataPruneError(f"store {writer.path} records signal(s) {unknown} this Recorder "
                                 f"cannot compute; it knows {known}")
        self = cls.__new__(cls)
        self.num_samples = writer.num_samples
        self.num_classes = int(writer.meta["num_classes"])
        self.signals = list(writer.signals)
        self.nan_policy = nan_policy
        self.epoch = int(writer.meta["epochs"])
        self.rank, self.world_size = _dist_rank_world()
        self._out = out
        self._writer = writer
        self._start_session()
        return self

    def state_dict(self) -> dict[str, torch.Tensor]:
        """State carried from one epoch to the next (CPU tensors), for exact resumption:
        ``tdds_d``'s previous log-softmax (N, C) float16 and its epoch stamps; else empty."""
        if getattr(self, "_prev_logp", None) is None:
            return {}
        n = self.num_samples
        return {"tdds_prev_logp": self._prev_logp[:n].cpu(), "tdds_prev_epoch": self._prev_epoch[:n].cpu()}

    def load_state_dict(self, state: Mapping[str, torch.Tensor]) -> None:
        """Restore :meth:`state_dict`; applied when the buffers are allocated (first update)."""
        self._carried_state = dict(state) or None

    @property
    def path(self) -> os.PathLike:
        from pathlib import Path
        return self._writer.path if self._writer is not None else Path(self._out)

    @property
    def fingerprint(self) -> str:
        """Fingerprint of the store after the last written epoch (see ``Dynamics.fingerprint``)."""
        return str(self._writer.meta["fingerprint"])

    def _allocate(self, device: torch.device) -> None:
        # One extra slot at index N absorbs writes we must discard (see update). One (N+1, S+1)
        # float32 table, a row per sample: its signals, then its label's int32 bits. The S+1
        # writes of one sample share a cache line: at N = 14.2M a batch costs one cache miss
        # per sample, not S+1 (benchmarks/recorder_update_scale.py).
        n = self.num_samples + 1
        table = torch.full((n, len(self.signals) + 1), float("nan"), device=device)
        self._buffers = {s: table[:, j] for j, s in enumerate(self.signals)}
        self._buffers["labels"] = table[:, -1].view(torch.int32).fill_(-1)
        self._bad = torch.zeros(3, dtype=torch.bool, device=device)
        # (2, 1) each: the smallest and largest valid sample index and target (update's clamp)
        self._range = (torch.zeros((2, 1), dtype=torch.int64, device=device),
                       torch.tensor([[self.num_samples - 1], [self.num_classes - 1]], device=device))
        if "tdds_d" in self.signals:  # previous epoch's log-softmax per sample + its epoch
            self._prev_logp = torch.zeros((n, self.num_classes), dtype=torch.float16, device=device)
            self._prev_epoch = torch.full((n,), -2, dtype=torch.int32, device=device)
            carried = self._carried_state
            if carried:
                self._prev_logp[:-1] = carried["tdds_prev_logp"].to(device)
                self._prev_epoch[:-1] = carried["tdds_prev_epoch"].to(device)

    def update(self, indices: torch.Tensor | np.ndarray | Sequence[int], logits: torch.Tensor,
               targets: torch.Tensor | np.ndarray | Sequence[int], *,
               features: torch.Tensor | None = None) -> None:
        """Record one batch: ``indices`` (B,) sample indices, ``logits`` (B, C), ``targets`` (B,).

        ``features`` (B, D): the input of the last linear layer, required by the ``grand``
        signal and ignored otherwise. Accepts tensors on any device. If an index appears
        twice in one epoch, the last value wins (for ``tdds_d`` the first); samples never
        passed in an epoch stay unobserved. ``logits`` may be bfloat16/float16 (e.g. under
        ``torch.autocast``): the signals are computed in float32. The first batches are
        checked (one host sync each) for probabilities passed instead of logits (refused).
        """
        logits = logits.detach()
        device = logits.device
        indices = torch.as_tensor(indices, device=device)
        targets = torch.as_tensor(targets, device=device)
        if logits.ndim != 2 or logits.shape[1] != self.num_classes:
            wide = (f": the model has {logits.shape[1]} outputs, so num_classes must be "
                    f"{logits.shape[1]}" if logits.ndim == 2 else "")
            raise DataPruneError(f"logits have shape {tuple(logits.shape)}; expected (B, {self.num_classes}) "
                                 f"for num_classes={self.num_classes}{wide}")
        if not logits.is_floating_point():
            raise DataPruneError(f"logits have dtype {logits.dtype}; expected floating-point logits")
        if indices.ndim != 1 or targets.ndim != 1 or not (
                len(indices) == len(targets) == logits.shape[0]):
            raise DataPruneError(f"batch sizes differ: indices {tuple(indices.shape)}, "
                                 f"logits {tuple(logits.shape)}, targets {tuple(targets.shape)}; "
                                 "expected (B,), (B, C), (B,)")
        if "grand" in self.signals:
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
        if self._buffers is None:
            self._allocate(device)
        buf = self._buffers
        indices, targets = indices.to(buf["labels"].device, torch.int64), targets.to(buf["labels"].device, torch.int64)
        eps = torch.finfo(logits.dtype).eps  # bf16/fp16 logits: signals computed in float32
        logits = logits.to(buf["labels"].device, torch.float32)

        n = self.num_samples
        pair = torch.stack([indices, targets])  # (2, B)
        clamped = pair.clamp(*self._range)
        in_range = clamped == pair  # (2, B): index in 0..N-1, target in 0..C-1
        y = clamped[1]  # an out-of-range target's row goes to the spare slot N
        batch = Batch(logits, y)
        # A row is finite iff total + min is: NaN in a row makes max and total NaN, +inf
        # makes total NaN (inf - inf), -inf makes min -inf; else total <= C and the sum cannot
        # overflow. At B*C = 256k on CPU, amin(1) takes ~1/20 of isfinite(logits).all(1).
        finite = (batch.total + batch.min).isfinite()
        if self._probe_left:  # the first batches only: one host sync each
            self._probe_left = 0 if len(logits) >= 2 else self._probe_left - 1
            if _looks_like_probabilities(batch, eps):
                raise DataPruneError(
                    "logits look like probabilities (every row of the batch lies in [0, 1] and sums "
                    "to 1), which would record softmax(probabilities), about 1/C for every sample; "
                    "pass the model's raw outputs (logits, before softmax), or torch.log(probabilities)")
        ok = torch.cat([in_range, finite[None]])
        keep = ok.all(0)
        if device.type != "cpu":
            self._bad |= ~ok.all(1)  # checked once per epoch, in end_epoch: no host sync here
        elif not keep.all():
            self._raise_if_bad(~ok.all(1), indices, targets)
        dest = _last_occurrence_dest(torch.where(keep, indices, n), n)

        # rows are independent: a non-finite row spoils only its own values, sent to slot N
        for s in self.signals:
            if s == "grand":  # exact last-layer gradient norm (weight and bias) of the CE loss
                h = features.to(logits.device, torch.float32)
                buf[s][dest] = _el2n(batch) * (h.square().sum(1) + 1).sqrt()
            elif s == "tdds_d":
                self._record_tdds_d(dest, torch.where(finite[:, None], logits, 0.0), batch.p)
            else:
                buf[s][dest] = SIGNALS[s](batch)
        buf["labels"][dest] = y.to(torch.int32)

    def _record_tdds_d(self, dest: torch.Tensor, safe_logits: torch.Tensor, p: torch.Tensor) -> None:
        """d_t = sum_c p_t,c |log p_t,c - log p_t-1,c|; the first occurrence in an epoch wins."""
        n, k = self.num_samples, self.epoch
        # both epochs' log-probs rounded to float16 alike: an unchanged softmax gives d = 0
        logp = torch.log_softmax(safe_logits, 1).clamp_min(-1e4).to(torch.float16)
        stamp = self._prev_epoch[dest]
        d = (p * (logp.float() - self._prev_logp[dest].float()).abs()).sum(1)
        d = torch.where(stamp == k - 1, d, float("nan"))
        dest = torch.where(stamp == k, n, dest)  # already seen this epoch: keep the first
        self._buffers["tdds_d"][dest] = d
        self._prev_logp[dest] = logp
        self._prev_epoch[dest] = k

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
            raise DataPruneError("logits contain NaN or inf; the model diverged (try a lower learning "
                                 "rate: --lr on the command line) - or, with dataprune.Recorder in your "
                                 "own loop, pass nan_policy='omit' to leave those samples unobserved")

    def epoch_values(self) -> dict[str, np.ndarray]:
        """This epoch's (N,) arrays per signal, plus ``labels``, on the host (one sync)."""
        out = {}
        for s in self.signals:
            row = self._buffers[s][: self.num_samples].cpu().numpy().copy()
            dtype = SIGNAL_DTYPES[s]
            if np.issubdtype(dtype, np.integer):
                row = np.where(np.isnan(row), missing_value(dtype), row)
            out[s] = row.astype(dtype)
        out["labels"] = self._buffers["labels"][: self.num_samples].cpu().numpy().astype(np.int64)
        return out

    def end_epoch(self) -> int:
        """Write the finished epoch to the store; returns the number of epochs recorded.

        Under torch.distributed (world size > 1) every rank must call it: the ranks' values
        are merged here, once per epoch, and only rank 0 writes.

        An epoch in which no sample was recorded (no :meth:`update` since the last call, or
        every row omitted under ``nan_policy="omit"``) is refused with an error and nothing
        is written: calling ``end_epoch`` twice would otherwise add an all-unobserved epoch
        that silently shifts every later Dyn-Unc window.

        Samples that no recording has seen once a whole epoch has passed (see
        :meth:`_check_coverage`) are reported once, as a warning on the ``dataprune.record``
        logger: a too large ``num_samples``, labels passed as indices, or a sampler that
        skips samples would otherwise surface only as NaN scores.
        """
        if self.world_size > 1:
            self._merge_ranks()
            if self.rank != 0:
                self._raise_if_bad(self._bad.cpu())
                self._refuse_empty_epoch(self._buffers["labels"][: self.num_samples].cpu().numpy())
                for b in self._buffers.values():
                    b.fill_(float("nan") if b.is_floating_point() else -1)
                self.epoch += 1
                return self.epoch
        if self._buffers is None:
            self._refuse_empty_epoch(None)
        if self._bad.device.type != "cpu" or self.world_size > 1:
            self._raise_if_bad(self._bad.cpu())
        rows = self.epoch_values()
        labels = rows.pop("labels")
        self._refuse_empty_epoch(labels)
        self._check_coverage(labels >= 0)
        for b in self._buffers.values():
            b.fill_(float("nan") if b.is_floating_point() else -1)
        self.epoch = self._writer.write_epoch(rows, labels)
        return self.epoch

    def _check_coverage(self, seen: np.ndarray) -> None:
        """Warn once when samples were never seen although a whole epoch has passed.

        ``seen`` (N,): the samples this recording saw (all ranks merged). A sample unseen by
        every recording so far is reported as soon as a recording adds no new sample to
        them: with ``record_every`` = 1/m (m recordings per training epoch, each seeing
        1/m of the data) or DDP shards, that first happens after a full epoch, so partial
        recordings never trigger it. Samples never seen get NaN scores later.
        """
        if self._coverage_done:
            return
        if self._coverage is None:
            self._coverage = seen.copy()
            return
        grew = bool((seen & ~self._coverage).any())
        self._coverage |= seen
        if self._coverage.all():  # every sample seen: nothing left to check, no O(N) pass per epoch
            self._coverage_done, self._coverage = True, None
            return
        if grew:
            return
        self._coverage_done = True
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

    def _refuse_empty_epoch(self, labels_seen: np.ndarray | None) -> None:
        """Raise if no sample was recorded this epoch (``labels_seen`` (N,), -1 = unseen)."""
        if labels_seen is None or not (labels_seen >= 0).any():
            raise DataPruneError(
                f"end_epoch(): nothing was recorded in epoch {self.epoch} (no update() since the last "
                "end_epoch(), or every row had NaN/inf logits under nan_policy='omit'); an epoch in "
                "which no sample is observed is not written - call update() with its batches first")

    def _merge_ranks(self) -> None:
        """All-gather-free exact merge of every rank's (N+1,) buffers (3 collectives).

        owner[i] = highest rank that wrote sample i this epoch (all_reduce MAX of rank or -1);
        each buffer then keeps only its owner's value (others contribute -inf / -1) and an
        all_reduce MAX picks it: exact, deterministic, no arithmetic on the values.
        """
        import torch.distributed as dist
        if self._buffers is None:
            backend = dist.get_backend()
            device = (torch.device("cuda", torch.cuda.current_device()) if backend == "nccl"
                      else torch.device("cpu"))
            self._allocate(device)
        buf, n = self._buffers, self.num_samples
        written = buf["labels"] >= 0
        written[n] = False  # the spare slot never counts
        packed = torch.cat([torch.where(written, self.rank, -1).to(torch.int32),
                            self._bad.to(torch.int32)])
        dist.all_reduce(packed, op=dist.ReduceOp.MAX)
        owner, self._bad = packed[: n + 1], packed[n + 1:] > 0
        mine = owner == self.rank
        plain = [s for s in self.signals if s != "tdds_d"]
        values = _pick_owner(torch.stack([buf[s] for s in plain]), mine)
        labels = torch.where(mine, buf["labels"], -1)
        dist.all_reduce(values, op=dist.ReduceOp.MAX)
        dist.all_reduce(labels, op=dist.ReduceOp.MAX)
        values = values.view(torch.float32)
        unseen = owner < 0
        for i, s in enumerate(plain):  # into the table's columns (see _allocate)
            buf[s].copy_(torch.where(unseen, float("nan"), values[i]))
        buf["labels"].copy_(labels)
        if "tdds_d" in self.signals:
            # tdds_d (first occurrence wins) and its state, the previous log-softmax per
            # sample, go to the LOWEST rank that saw the sample this epoch; rows nobody saw
            # are already equal on all ranks (by induction). O(N*C) traffic per epoch.
            w = self.world_size
            first = torch.where(self._prev_epoch[: n + 1] == self.epoch, w - 1 - self.rank, -1)
            first = first.to(torch.int32)
            first[n] = -1
            dist.all_reduce(first, op=dist.ReduceOp.MAX)
            seen, mine = first >= 0, first == w - 1 - self.rank
            d = _pick_owner(buf["tdds_d"], mine)
            logp = _pick_owner(self._prev_logp.float(), mine[:, None])
            dist.all_reduce(d, op=dist.ReduceOp.MAX)
            dist.all_reduce(logp, op=dist.ReduceOp.MAX)
            buf["tdds_d"].copy_(torch.where(seen, d.view(torch.float32), float("nan")))
            logp = logp.view(torch.float32).to(torch.float16)
            self._prev_logp = torch.where(seen[:, None], logp, self._prev_logp)
            self._prev_epoch = torch.where(seen, self.epoch, self._prev_epoch).to(torch.int32)

    def finish(self) -> None:
        """Mark the store finished: recording is over. Needed only when stopping before the
        planned ``epochs`` (early stopping) or when none were planned; a store holding its
        planned epochs is finished anyway. ``dataprune select``/``scores`` warn about an
        unfinished store, ``dataprune check`` says so. Every rank may call it (rank 0 writes)."""
        if self._writer is not None:
            self._writer.finish()

    def close(self) -> None:
        """Release buffers; the store on disk is already complete after each ``end_epoch``
        (``close`` does not :meth:`finish` it: it may be called after a failure)."""
        self._buffers = None
        self._prev_logp = self._prev_epoch = None

    def __enter__(self) -> "Recorder":
        return self

    def __exit__(self, exc_type: type | None, *exc: object) -> None:
        """Leaving a ``with`` block normally finishes the store (see :meth:`finish`); an
        exception leaves it unfinished."""
        if exc_type is None:
            self.finish()
        self.close()
