"""Issue 10 items 16-19: errors instead of tracebacks, messages without impossible ranges,
and small CLI wording fixes. Each test fails without its fix."""
from __future__ import annotations

import re

import numpy as np
import pytest
import torch

import dataprune as dp
from dataprune.errors import DataPruneError
from dataprune.record import ALL_SIGNALS, EXTRA_SIGNALS


def _store(path, epochs: int, n: int = 6, c: int = 3):
    """A store of every signal with ``epochs`` recorded epochs (N=n, C=c)."""
    rec = dp.Recorder(n, path, c, signals=ALL_SIGNALS + EXTRA_SIGNALS)
    g = torch.Generator().manual_seed(0)
    for _ in range(epochs):
        rec.update(torch.arange(n), torch.randn(n, c, generator=g), torch.arange(n) % c,
                   features=torch.randn(n, 4, generator=g))
        rec.end_epoch()
    return dp.Dynamics.open(path)


def _impossible_ranges(message: str) -> list[str]:
    """Ranges in ``message`` that no value satisfies: 'a <= x < b' with b <= a, 'in a..b' with b < a."""
    bad = []
    for lo, op, hi in re.findall(r"(-?\d+) <= \w+ (<=?) (-?\d+)", message):
        if int(hi) < int(lo) or (op == "<" and int(hi) == int(lo)):
            bad.append(f"{lo} <= x {op} {hi}")
    bad += [f"{lo}..{hi}" for lo, hi in re.findall(r"in (-?\d+)\.\.(-?\d+)", message) if int(hi) < int(lo)]
    return bad


# --- item 17: no impossible ranges ------------------------------------------------------------

def test_impossible_range_detector():
    assert _impossible_ranges("expected 2 <= window < 2") == ["2 <= x < 2"]
    assert _impossible_ranges("expected 3 <= epochs <= 2 (0 = all)") == ["3 <= x <= 2"]
    assert _impossible_ranges("expected an integer in 2..1") == ["2..1"]
    assert _impossible_ranges("expected 2 <= window < 5, in 0..9") == []


@pytest.mark.parametrize("epochs", [1, 2])
def test_short_store_messages_say_what_is_needed(epochs, tmp_path):
    """Every method on a 1- or 2-epoch store: either it scores or its message is possible."""
    dyn = _store(tmp_path / "s", epochs)
    for method in dp.methods():
        for params in ({}, {"window": 2}, {"epochs": 2}):
            try:
                dp.score(method, dyn, **params)
            except DataPruneError as e:
                assert not _impossible_ranges(str(e)), f"{method} {params}: {e}"


@pytest.mark.parametrize("call,message", [
    (lambda d: dp.score("dyn-unc", d, window=2), r"dyn-unc needs at least 3 recorded epochs \(the store has 2\); got window=2"),
    (lambda d: dp.score("tdds", d), r"tdds needs at least 3 recorded epochs \(the store has 2\); got epochs=0"),
    (lambda d: dp.score("cartography", d, epochs=3), r"epochs=3 with 2 recorded epochs; expected an integer in 2\.\.2"),
])
def test_needs_at_least_k_epochs(call, message, tmp_path):
    with pytest.raises(DataPruneError, match=message):
        call(_store(tmp_path / "s", 2))


def test_keep_history_none_window_one(tmp_path):
    with pytest.raises(DataPruneError, match=r"window=1; expected an integer >= 2"):
        dp.Recorder(4, tmp_path / "s", 3, keep_history="none", window=1)
