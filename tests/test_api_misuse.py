"""Wrong input the Python API would otherwise accept silently: probabilities passed as logits,
labels passed as indices, ``num_samples`` too large, samplers that skip samples, NaN scores,
an empty store, a misspelled method parameter, a ``num_classes`` that does not match the model."""
import logging

import numpy as np
import pytest
import torch

import dataprune as dp
from dataprune.errors import DataPruneError
from dataprune.methods import get
from helpers_methods import dynamics_methods

N, C = 40, 4


def _record(path, batches_per_epoch, num_samples=N, epochs=3, **kw):
    """A Recorder fed ``batches_per_epoch(epoch)`` -> [(indices, targets)] with random logits,
    ``end_epoch()`` after each list (one recording each)."""
    gen = torch.Generator().manual_seed(0)
    rec = dp.Recorder(num_samples, path, C, epochs=epochs, **kw)
    for e in range(epochs):
        for idx, y in batches_per_epoch(e):
            rec.update(idx, torch.randn(len(idx), C, generator=gen), y)
        rec.end_epoch()
    return rec


# --- probabilities passed as logits ---------------------------------------------------------------

@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
def test_probabilities_instead_of_logits_are_refused(tmp_path, dtype):
    rec = dp.Recorder(N, tmp_path / "s", C)
    probs = torch.softmax(torch.randn(8, C, generator=torch.Generator().manual_seed(1)), 1).to(dtype)
    with pytest.raises(DataPruneError, match=r"logits look like probabilities.*raw outputs \(logits, before softmax\)"):
        rec.update(torch.arange(8), probs, torch.arange(8) % C)


def test_logits_and_log_probabilities_pass_the_probe(tmp_path):
    gen = torch.Generator().manual_seed(2)
    rec = dp.Recorder(N, tmp_path / "s", C)
    rec.update(torch.arange(8), torch.log_softmax(torch.randn(8, C, generator=gen), 1), torch.arange(8) % C)
    rec.update(torch.arange(8, 16), torch.rand(8, C, generator=gen), torch.arange(8) % C)  # in [0, 1], sums != 1
    rec.update(torch.arange(16, 18), torch.eye(C)[:2], torch.arange(2))  # one-hot rows: not a softmax
    assert rec.end_epoch() == 1


def test_probability_probe_is_cheap_and_stops(tmp_path):
    """Probed until one batch of >= 2 rows was checked: later softmax batches are not refused
    (the probe costs a host sync, so it runs on the first batches only)."""
    rec = dp.Recorder(N, tmp_path / "s", C)
    rec.update(torch.arange(8), torch.randn(8, C), torch.arange(8) % C)
    rec.update(torch.arange(8), torch.softmax(torch.randn(8, C), 1), torch.arange(8) % C)  # not probed
    assert rec._probe_left == 0


# --- labels passed as indices, num_samples too large, samplers that skip --------------------------

def _full_epoch(e, n=N, drop=0):
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(e))[: n - drop]
    return [(perm[a:a + 8], perm[a:a + 8] % C) for a in range(0, len(perm), 8)]


def _warnings(caplog):
    return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING and r.name.startswith("dataprune")]


def test_labels_as_indices_warn_once(tmp_path, caplog):
    def labels_as_index(e):
        y = torch.randint(0, C, (N,), generator=torch.Generator().manual_seed(e))
        return [(y, y)]
    with caplog.at_level(logging.WARNING, "dataprune"):
        _record(tmp_path / "s", labels_as_index, epochs=4)
    msgs = _warnings(caplog)
    assert len(msgs) == 1, msgs
    assert f"{N - C} of {N} samples were never seen in a full epoch" in msgs[0]
    assert "index column looks like the labels" in msgs[0] and "num_samples" in msgs[0]


def test_num_samples_too_large_warns_without_the_labels_hint(tmp_path, caplog):
    with caplog.at_level(logging.WARNING, "dataprune"):
        _record(tmp_path / "s", lambda e: _full_epoch(e), num_samples=N + 10)
    msgs = _warnings(caplog)
    assert len(msgs) == 1 and f"10 of {N + 10} samples were never seen" in msgs[0], msgs
    assert "labels" not in msgs[0].split(";")[0]


def test_sampler_that_skips_warns(tmp_path, caplog):
    """A sampler that always leaves out the same samples (a fixed subset)."""
    fixed = torch.arange(N - 3)
    with caplog.at_level(logging.WARNING, "dataprune"):
        _record(tmp_path / "s", lambda e: [(fixed, fixed % C)])
    assert len(msgs := _warnings(caplog)) == 1 and "3 of 40 samples were never seen" in msgs[0]


def test_partial_recordings_and_full_epochs_do_not_warn(tmp_path, caplog):
    """record_every = 1/m: m recordings per epoch, each seeing its 1/m of the data (like a
    DDP rank's shard); and drop_last, which skips different samples each epoch."""
    def quarters(r):  # recording r is quarter r % 4 of epoch r // 4
        perm = torch.randperm(N, generator=torch.Generator().manual_seed(r // 4))
        part = perm[(r % 4) * N // 4:(r % 4 + 1) * N // 4]
        return [(part, part % C)]
    with caplog.at_level(logging.WARNING, "dataprune"):
        _record(tmp_path / "q", quarters, epochs=12)
        _record(tmp_path / "d", lambda e: _full_epoch(e, drop=3), epochs=4)
        _record(tmp_path / "f", _full_epoch)
    assert _warnings(caplog) == []


def test_nan_error_names_the_likely_causes_before_nan_policy():
    with pytest.raises(DataPruneError) as e:
        dp.select(np.array([0.5, np.nan, 0.2]), 0.5)
    msg = str(e.value)
    assert "\n" not in msg
    causes = [msg.index(w) for w in ("num_samples", "index column", "sampler", "nan_policy")]
    assert causes == sorted(causes), msg


# --- empty store, misspelled parameters, num_classes ----------------------------------------------

def test_empty_store_error_names_end_epoch(tmp_path):
    dp.Recorder(N, tmp_path / "s", C)
    dyn = dp.Dynamics.open(tmp_path / "s")
    for method in [m for m in dynamics_methods() if set(get(m).needs) <= set(dyn.signals)]:
        with pytest.raises(DataPruneError, match=rf"{method} needs at least 1 recorded epochs \(the store has 0; "
                                                 r"Recorder\.end_epoch\(\) records one"):
            dp.score(method, dyn)
    with pytest.raises(DataPruneError, match=r"holds no epochs.*end_epoch\(\)"):  # a bare (0, N) array
        dp.score("forgetting", {"correct": np.zeros((0, 3), np.int8)})


def test_misspelled_parameter_names_method_and_valid_parameters(tmp_path):
    _record(tmp_path / "s", _full_epoch)
    dyn = dp.Dynamics.open(tmp_path / "s")
    with pytest.raises(DataPruneError) as e:
        dp.score("dyn-unc", dyn, windw=2)
    assert str(e.value) == ("method 'dyn-unc' has no parameter 'windw' (did you mean 'window'?); "
                            "it takes window, epochs, semantics")


def test_misspelling_is_found_by_the_signature_not_the_error_text(tmp_path):
    """A TypeError raised inside a method (whatever its text) is not mistaken for a bad
    parameter, and a bad parameter is refused before the method runs."""
    from dataprune.methods._registry import _REGISTRY, register
    calls = []

    @register("test-typeerror", summary="raises TypeError")
    def _fn(dynamics, *, alpha: int = 1):
        calls.append(alpha)
        raise TypeError("got an unexpected keyword argument 'x'")
    try:
        with pytest.raises(DataPruneError, match="has no parameter 'beta'; it takes alpha"):
            dp.score("test-typeerror", np.zeros((2, 3)), beta=1)
        assert calls == []
        with pytest.raises(TypeError):
            dp.score("test-typeerror", np.zeros((2, 3)), alpha=2)
    finally:
        del _REGISTRY["test-typeerror"]


@pytest.mark.parametrize("outputs", [C + 2, C - 1])
def test_num_classes_mismatch_says_num_classes(tmp_path, outputs):
    rec = dp.Recorder(N, tmp_path / "s", C)
    with pytest.raises(DataPruneError, match=rf"for num_classes={C}: the model has {outputs} outputs, "
                                             rf"so num_classes must be {outputs}"):
        rec.update(torch.arange(4), torch.randn(4, outputs), torch.arange(4) % C)
