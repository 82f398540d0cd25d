"""Where the project uses the ecosystem instead of hand-written code: scikit-learn's average
precision for the OOD AUPR, and the ``logging`` module (library code never prints)."""
import builtins

import numpy as np
import pytest

from dataprune.bench.ood import average_precision, load_ood, msp_aupr
from dataprune.errors import DataPruneError


def handwritten_average_precision(pos, scores):
    """The vectorised version bench/ood.py had before it called scikit-learn (kept as a reference)."""
    order = np.argsort(-scores, kind="stable")
    s, y = scores[order], pos[order]
    last = np.r_[np.flatnonzero(np.diff(s)), len(s) - 1]
    tp = np.cumsum(y)[last]
    precision, recall = tp / (last + 1), tp / tp[-1]
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


@pytest.mark.parametrize("seed", range(20))
def test_aupr_equals_the_handwritten_version(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(2, 2000))
    pos = rng.random(n) < rng.uniform(0.02, 0.9)
    pos[rng.integers(n)] = True
    scores = (rng.integers(0, 12, n).astype(float) if seed % 2 else  # ties on odd seeds
              np.float32(rng.random(n)).astype(np.float64))           # float32 MSPs, as in bench
    assert average_precision(pos, scores) == pytest.approx(handwritten_average_precision(pos, scores),
                                                           rel=0, abs=1e-12)


def test_msp_aupr_hand_cases_unchanged():
    # P = 1, 1/2, 2/3 at R = 1/2, 1/2, 1 -> 5/6; a positive tied with a negative -> 1/2
    assert average_precision(np.array([1, 0, 1], bool), np.array([0.9, 0.8, 0.7])) == pytest.approx(5 / 6)
    assert average_precision(np.array([1, 0], bool), np.array([0.5, 0.5])) == pytest.approx(0.5)
    # OOD (positive) as confident as in-distribution at 0.5: P = 1, 1, 2/3 at R = 1/2, 1/2, 1
    assert msp_aupr(np.array([0.9, 0.5]), np.array([0.1, 0.5])) == pytest.approx(0.5 + 0.5 * 2 / 3)


def test_aupr_without_sklearn_is_one_clear_error(monkeypatch):
    real_import = builtins.__import__

    def no_sklearn(name, *args, **kwargs):
        if name.startswith("sklearn"):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_sklearn)
    with pytest.raises(DataPruneError, match=r"needs scikit-learn: pip install 'dataprune\[bench\]'"):
        average_precision(np.array([1, 0], bool), np.array([0.2, 0.1]))
    with pytest.raises(DataPruneError, match="needs scikit-learn"):  # before any training
        load_ood("idx:/nonexistent")
