"""Dynamic Uncertainty (He et al., "Large-scale Dataset Pruning with Dynamic Uncertainty").

U_k = std (ddof=1) of the labelled-class probability over epochs k..k+J-1,
U = mean of U_k over k = 0..K-J-1 (Eq. 2-3). Higher U = more uncertain = keep.

The window J (``--window``, default 10 as in the paper) is the one knob; it must satisfy
2 <= J < K. The paper fixes J=10 and reports no sweep, so sweep it on your own data, e.g.
``for j in (5, 10, 20): dp.score("dyn-unc", dyn, window=j)`` or
``dataprune select RUN --method dyn-unc --window 5`` (``--window 20``, ...): scoring is cheap
(one pass over the store per J), only the retraining to compare subsets costs time.
Small J measures short-term jitter, large J approaches one std over the whole run (the
single-variance ``cartography`` baseline of the paper's Table 7, which uses ddof=0).
"""
from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import DataPruneError
from ._common import check_int, check_nan_scores, check_window, column_sums, leading
from ._registry import register
from .dyn_unc_official import dyn_unc_official

#: elements (K x columns) read from the store per block, converted to float32 at once.
_READ_ELEMENTS = 1 << 21
#: elements (K x columns) per work chunk: the float64 working set (~3 arrays of
#: 2 x this x 8 bytes) stays in L2/L3 cache while the chunk is processed.
_WORK_ELEMENTS = 1 << 18


#: ``semantics`` of :func:`dyn_unc`: how unobserved epochs count.
SEMANTICS = ("paper", "official")


def dyn_unc(prob: Any, window: int = 10, *, epochs: int = 0, chunk_size: int | None = None,
            semantics: str = "paper") -> np.ndarray:
    """Dynamic uncertainty of every sample.

    Parameters
    ----------
    prob : Any
        (K, N) labelled-class probability per epoch; NaN = not observed. May be a
        memory-mapped array: it is read in blocks of samples, never whole, so memory does not
        grow with K or N. Also accepts a :class:`~dataprune.Dynamics` (including a store
        recorded with ``keep_history="window"``, which must have been recorded with this window).
    window : int
        J, the sliding-window length, 2 <= J < T (default 10).
    epochs : int
        T, use only the first T recorded epochs (default 0 = all K; early scoring).
    chunk_size : int | None
        Samples per work chunk (default None: about 2**18 / K).
    semantics : str
        ``"paper"`` (default): fixed windows of epochs k..k+J-1, unobserved epochs skipped
        inside them (Eq. 2). ``"official"``: the official code's scores exactly, for
        reproducing its released coresets: per sample a ring of the last J observed values
        starting from zeros, repeated while the sample is unseen, times 10
        (:func:`~dataprune.methods.dyn_unc_official.dyn_unc_official`). The two agree (up to
        the factor 10) on samples observed in every epoch.

    Returns
    -------
    np.ndarray
        (N,) float64, higher = more uncertain = more worth keeping. A window with fewer than
        two observed epochs is skipped; a sample with no usable window gets NaN.

    Notes
    -----
    One streaming pass per chunk: window sums of ``d`` and ``d**2`` (``d`` = p minus the
    sample's first value) slide along the epochs in float64. For float16 stores of values in
    [0, 1] every one of these sums is exact (float16 values are multiples of 2**-24, so ``d``
    fits float32 and ``d**2`` fits float64 exactly), so nothing accumulates along K; the
    variance numerator ``J*S2 - S1**2`` is rounded once. For float16 input the square root is
    taken in float32 (relative error <= 1e-7 per window), the mean over windows in float64.
    Other dtypes are computed in float64 throughout.
    """
    if semantics not in SEMANTICS:
        raise DataPruneError(f"semantics={semantics!r}; expected one of {', '.join(SEMANTICS)}")
    if hasattr(prob, "signals") and not hasattr(prob, "ndim"):  # a Dynamics store
        if not prob.history.per_epoch:
            if semantics == "official":
                raise DataPruneError(prob.unavailable("semantics='official' (it needs every epoch)"))
            if check_int("epochs", epochs, 0) not in (0, prob.epochs):
                raise DataPruneError(f"epochs={epochs}: the store at {prob.path} keeps no prob history "
                                     f"(keep_history='{prob.history}'), so only all recorded epochs (0) can be used")
            if window == prob.window:
                check_window(window, prob.epochs)
            return prob.dyn_unc(window)
        prob = prob["prob"]
    if semantics == "official":
        if getattr(prob, "ndim", None) != 2:
            raise DataPruneError(f"prob has shape {getattr(prob, 'shape', None)}; expected (K, N)")
        return dyn_unc_official(leading(prob, epochs)[0], window)
    return windowed_std(prob, window, epochs=epochs, weighted=False, chunk_size=chunk_size)


def windowed_std(prob: Any, window: int, *, epochs: int = 0, weighted: bool = False,
                 chunk_size: int | None = None) -> np.ndarray:
    """Mean over sliding windows of J epochs of the window's std (ddof=1) of a (K, N) array.

    ``weighted=False``: Dyn-Unc, K-J windows (k = 0..K-J-1). ``weighted=True``: DUAL, each
    window's std times (1 - the window's mean), T-J+1 windows (the last one included). Only
    the first ``epochs`` rows are used (0 = all). Returns (N,) float64 (NaN: no usable window);
    see :func:`dyn_unc` for the NaN rules and the float16 arithmetic.
    """
    if getattr(prob, "ndim", None) != 2:
        raise DataPruneError(f"prob has shape {getattr(prob, 'shape', None)}; expected (K, N)")
    prob, span = leading(prob, epochs)
    k_epochs, n = prob.shape
    check_window(window, k_epochs, last_window=weighted, span=span)
    if chunk_size is None:
        chunk_size = max(1, _WORK_ELEMENTS // k_epochs)
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, (int, np.integer)) or chunk_size < 1:
        raise DataPruneError(f"chunk_size={chunk_size!r}; expected an integer >= 1")
    half16 = np.dtype(getattr(prob, "dtype", np.float64)) == np.float16
    read_cols = max(1, _READ_ELEMENTS // (k_epochs * chunk_size)) * chunk_size
    kernel = _Kernel(k_epochs, window, min(chunk_size, n), sqrt32=half16, weighted=weighted)
    out = np.empty(n, dtype=np.float64)
    reader = _FileRows.of(prob)
    for a in range(0, n, read_cols):
        if reader is not None:  # read the file: no mapped pages pile up in the process
            block = _to_float32(reader.read(a, min(n, a + read_cols)))
        else:
            block = _block_float(prob, a, a + read_cols, half16)
        first = np.nan_to_num(block[0]).astype(np.float64)
        if half16:  # centre on the first epoch (0 where unobserved) in cheap float32:
            # exact for float16 values in [0, 1] (differences are multiples of 2**-24 below 1)
            block = block if block.flags.writeable else block.copy()
            block -= np.nan_to_num(block[0])
        for b in range(0, block.shape[1], chunk_size):
            chunk = block[:, b:b + chunk_size]
            out[a + b:a + b + chunk.shape[1]] = kernel(chunk, first[b:b + chunk.shape[1]])
    check_nan_scores(out, prob, "prob")
    return out


def _block_float(prob: Any, a: int, b: int, half16: bool) -> np.ndarray:
    """Columns a:b of prob as float32 (float16 input) or float64 (other input)."""
    block = prob[:, a:b]
    return _to_float32(block) if half16 else np.asarray(block, dtype=np.float64)


def _to_float32(block: np.ndarray) -> np.ndarray:
    try:  # torch converts float16 with SIMD, ~15x faster than NumPy's cast
        import warnings

        import torch
    except ImportError:  # pragma: no cover - torch is a dependency, but scoring works without
        return np.asarray(block, dtype=np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # read-only memmap is fine
        return torch.from_numpy(np.asarray(block)).to(torch.float32).numpy()


class _FileRows:
    """Column blocks of a memory-mapped float16 (K, N) array, read with ``os.preadv``.

    Reading a memmap maps every touched page into the process (RSS grows to the file size);
    reading the file into one reused (K, block) buffer keeps memory at the block size.
    """

    def __init__(self, path: str, offset: int, row_stride: int, k_epochs: int):
        import os
        self.fd = os.open(path, os.O_RDONLY)
        self.offset, self.row_stride, self.k = offset, row_stride, k_epochs
        self.buf: np.ndarray | None = None

    @classmethod
    def of(cls, prob: Any) -> "_FileRows | None":
        import mmap as _mmap
        mm = getattr(prob, "_mmap", None)
        if (not isinstance(prob, np.memmap) or mm is None or prob.dtype != np.float16
                or prob.strides[1] != 2 or prob.strides[0] < 2 * prob.shape[1]
                or getattr(prob, "filename", None) is None):
            return None
        try:
            base = np.frombuffer(mm, np.uint8).ctypes.data
            start = prob.offset - prob.offset % _mmap.ALLOCATIONGRANULARITY
            return cls(prob.filename, prob.ctypes.data - base + start, prob.strides[0], prob.shape[0])
        except (TypeError, ValueError, OSError):  # closed mmap, odd buffer: use the memmap
            return None

    def read(self, a: int, b: int) -> np.ndarray:
        import os
        m = b - a
        if self.buf is None or self.buf.shape[1] < m:
            self.buf = np.empty((self.k, m), np.float16)
        out = self.buf[:, :m] if m == self.buf.shape[1] else np.empty((self.k, m), np.float16)
        for k in range(self.k):
            row = out[k]
            got = os.preadv(self.fd, [row], self.offset + k * self.row_stride + 2 * a)
            if got != row.nbytes:
                raise DataPruneError(f"store file ended early: read {got} of {row.nbytes} bytes "
                                     f"(row {k}); the store is truncated")
        return out

    def __del__(self) -> None:
        import os
        try:
            os.close(self.fd)
        except (OSError, AttributeError):
            pass


class _Kernel:
    """Windowed std of (K, c) chunks with preallocated float64 work buffers (reused per chunk);
    ``weighted``: each window's std times (1 - window mean), T-J+1 windows (DUAL)."""

    def __init__(self, k_epochs: int, window: int, columns: int, *, sqrt32: bool, weighted: bool = False):
        self.k, self.j = k_epochs, window
        self.w = k_epochs - window + 1 if weighted else k_epochs - window
        self.sqrt32, self.weighted = sqrt32, weighted
        self.v = np.empty((k_epochs, 2 * columns))      # [d | d*d]
        self.s = np.empty((self.w, 2 * columns))        # window sums [S1 | S2]
        self.r = np.empty((self.w, columns), np.float32 if sqrt32 else np.float64)
        self.scale = 1.0 / (self.w * np.sqrt(window * (window - 1.0)))

    def __call__(self, x: np.ndarray, first: np.ndarray) -> np.ndarray:
        """x: (K, c) chunk, centred on ``first`` ((c,) float64, 0 where unobserved) when float16."""
        c = x.shape[1]
        j, w = self.j, self.w
        v, s = self.v[:, :2 * c], self.s[:, :2 * c]
        d, q = v[:, :c], v[:, c:]
        np.copyto(d, x)
        if not self.sqrt32:     # float64 input: centre here (float16 blocks come centred)
            d -= first
        np.multiply(d, d, out=q)
        _sliding_sums(v, j, w, s)
        s1, s2 = s[:, :c], s[:, c:]
        weight = 1.0 - (s1 / j + first) if self.weighted else None  # 1 - window mean
        s2 *= j
        s1 *= s1
        s2 -= s1                # J*S2 - S1^2 = J*(J-1)*var
        r = self.r[:, :c]
        np.copyto(r, s2, casting="unsafe")
        with np.errstate(invalid="ignore"):
            np.sqrt(r, out=r)   # a negative (rounding; never seen) or NaN input gives NaN: the
        if weight is not None:  # sample then takes the exact masked path below
            r *= weight
        u = column_sums(r)      # row order: a score never depends on the chunk's width
        u *= self.scale
        bad = np.isnan(u)
        if bad.any():           # samples with unobserved epochs: exact NaN-aware path
            u[bad] = _windowed_masked(np.asarray(x[:, bad], np.float64) + (first[bad] if self.sqrt32 else 0.0),
                                      j, w, self.weighted)
        return u


def _sliding_sums(v: np.ndarray, window: int, windows: int, out: np.ndarray) -> np.ndarray:
    """out[k] = v[k] + ... + v[k+window-1] for k < windows; one add per epoch.

    Each out[k] is computed as out[k-1] + (v[k+window-1] - v[k-1]); when the window sums are
    exactly representable (float16 data) no rounding accumulates along the epochs.
    """
    v[:window].sum(0, out=out[0])
    if windows > 1:
        np.subtract(v[window:window + windows - 1], v[:windows - 1], out=out[1:])
        for k in range(1, windows):
            np.add(out[k], out[k - 1], out=out[k])
    return out


def _windowed_masked(x: np.ndarray, window: int, windows: int, weighted: bool) -> np.ndarray:
    """Eq. 2-3 on a (K, c) float64 chunk with NaN = unobserved (windows with < 2 skipped) over
    the first ``windows`` windows; ``weighted``: std times (1 - mean of the window's observed)."""
    k_epochs, c = x.shape
    observed = ~np.isnan(x)
    first = np.where(observed.any(0), x[observed.argmax(0), np.arange(c)], 0.0)
    v = np.empty((k_epochs, 3 * c))
    v[:, :c] = observed
    np.subtract(x, first, out=v[:, c:2 * c])
    v[:, c:2 * c][~observed] = 0.0
    np.multiply(v[:, c:2 * c], v[:, c:2 * c], out=v[:, 2 * c:])
    s = _sliding_sums(v, window, windows, np.empty((windows, 3 * c)))
    return _mean_window_std(s[:, :c], s[:, c:2 * c], s[:, 2 * c:], offset=first if weighted else None)


def _mean_window_std(n: np.ndarray, s1: np.ndarray, s2: np.ndarray,
                     offset: np.ndarray | None = None) -> np.ndarray:
    """Mean over rows (windows) of the ddof=1 std from counts n and sums s1, s2 (rows = windows);
    with ``offset`` (the value the sums were centred on), each std times (1 - window mean)."""
    usable = n >= 2
    with np.errstate(invalid="ignore", divide="ignore"):
        var = (n * s2 - s1 * s1) / (n * (n - 1))
        std = np.sqrt(np.clip(np.where(usable, var, 0.0), 0.0, None))
        if offset is not None:
            std = np.where(usable, std * (1.0 - (s1 / n + offset)), 0.0)
    windows = usable.sum(0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(windows > 0, column_sums(std) / windows, np.nan)


@register("dyn-unc", summary="dynamic uncertainty: mean over sliding windows of the std of "
                             "the labelled-class probability (keeps uncertain samples)",
          needs=("prob",))
def dyn_unc_scores(dynamics: Any, *, window: int = 10, epochs: int = 0, semantics: str = "paper") -> np.ndarray:
    """Dyn-Unc scores of a :class:`~dataprune.Dynamics` over its first ``epochs`` epochs.

    Parameters
    ----------
    dynamics : Any
        A :class:`~dataprune.Dynamics` that recorded ``prob``.
    window : int
        J, the sliding-window length, 2 <= J < T (default 10).
    epochs : int
        T, use only the first T recorded epochs (default 0 = all K; early scoring).
    semantics : str
        ``"paper"`` (default) or ``"official"``, which reproduces the official code's scores
        (see :func:`dyn_unc`).

    Returns
    -------
    np.ndarray
        (N,) float64, higher = more uncertain = more worth keeping; NaN where no window was usable.
    """
    return dyn_unc(dynamics, window=window, epochs=epochs, semantics=semantics)
