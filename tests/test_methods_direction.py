"""Direction tests (higher score = keep) for every registered method on one synthetic scoring
run, and the registry contract the CLI relies on. The methods are grouped by what the registry
and the library declare (the signals and files a method reads; whether its score is a
difficulty measure), so a newly registered method is tested without being named here."""
import inspect

import numpy as np
import pytest
import torch

import dataprune as dp
from dataprune.methods import DIFFICULTY_MEASURES, get
from dataprune.run_outputs import LOGITS_FILE
from helpers_methods import dynamics_methods, logits_for, methods_reading, needed_signals, with_window

N, C, K = 40, 4, 20
EASY, UNCERTAIN, HARD = np.arange(0, 10), np.arange(10, 30), np.arange(30, 40)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """easy: p=0.99 every epoch; uncertain: p alternates ~0.7 / ~0.2 (learned, forgotten);
    hard: p ~0.05, never learned. Every signal recorded, final outputs saved."""
    root = tmp_path_factory.mktemp("run")
    rng = np.random.default_rng(0)
    y = np.arange(N) % C
    rec = dp.Recorder(N, root / "dynamics", C, epochs=K,
                      signals=needed_signals())
    feats = torch.ones(N, 3)
    for k in range(K):
        p = np.empty(N)
        p[EASY] = 0.99
        p[UNCERTAIN] = (0.7 if k % 2 == 0 else 0.2) + rng.uniform(-0.05, 0.05, len(UNCERTAIN))
        p[HARD] = 0.05 + rng.uniform(-0.01, 0.01, len(HARD))
        for part in np.array_split(rng.permutation(N), 3):
            rec.update(torch.tensor(part), logits_for(p[part], y[part], C), torch.tensor(y[part]),
                       features=feats[part])
        rec.end_epoch()
    p_final = np.where(np.isin(np.arange(N), EASY), 0.99, np.where(np.isin(np.arange(N), HARD), 0.05, 0.5))
    dp.save_final_outputs(root, logits_for(p_final, y, C), rng.standard_normal((N, 6)))
    return dp.Dynamics.open(root)


#: methods that read what training did to each sample: per-epoch signals or the final logits
#: (not random, not the feature-space methods: this run's features say nothing)
READS_TRAINING = sorted(set(dynamics_methods()) | set(methods_reading(LOGITS_FILE)))
#: dynamics methods whose score is the spread of a signal over epochs, not a difficulty
#: measure (DIFFICULTY_MEASURES: higher = harder): they keep learned-and-forgotten samples
UNCERTAINTY = [m for m in dynamics_methods() if m not in DIFFICULTY_MEASURES]
#: the others keep the hard samples: difficulty measures and the final model's uncertainty
KEEPS_HARD = [m for m in READS_TRAINING if m not in UNCERTAINTY]


def test_groups_cover_the_builtin_methods():
    assert {"dyn-unc", "dual", "cartography", "tdds"} <= set(UNCERTAINTY)
    assert {"forgetting", "el2n", "grand", "aum", "entropy"} <= set(KEEPS_HARD)


@pytest.mark.parametrize("method", READS_TRAINING)
def test_always_correct_sample_is_pruned_first(run, method):
    s = dp.score(method, run, **with_window(method, 5))
    kept = dp.select(s, 0.25)                         # prunes 10 = the 10 easy samples
    assert not np.isin(EASY, kept).any(), (method, s[EASY], np.sort(s)[:12])


@pytest.mark.parametrize("method", KEEPS_HARD)
def test_hard_samples_are_kept_by_difficulty_methods(run, method):
    kept = dp.select(dp.score(method, run), 0.25)
    assert np.isin(HARD, kept).all()


@pytest.mark.parametrize("method", UNCERTAINTY)
def test_uncertain_samples_rank_first_for_dynamics_methods(run, method):
    kept = dp.select(dp.score(method, run, **with_window(method, 5)), 0.5)   # keeps 20
    assert set(kept.tolist()) == set(UNCERTAIN.tolist())


def test_forgetting_counts_on_the_run(run):
    s = dp.score("forgetting", run)
    assert np.all(s[EASY] == 0) and np.all(s[HARD] == K)       # never learned -> K
    assert np.all(s[UNCERTAIN] == K // 2)                      # forgotten every other epoch


@pytest.mark.parametrize("name", dp.list_methods())
def test_every_method_runs_on_a_run_directory(run, name):
    s = dp.score(name, run, **with_window(name, 5))
    assert s.shape == (N,) and s.dtype == np.float64 and np.isfinite(s).all(), name


def test_registry_contract():
    """One-line summaries, and keyword-only parameters whose defaults give the CLI a type."""
    names = dp.list_methods()
    assert {"random", "dyn-unc", "forgetting", "entropy", "el2n", "grand", "cartography", "aum",
            "moderate", "ssp", "tdds"} <= set(names)
    for name in names:
        m = get(name)
        assert m.summary and "\n" not in m.summary and len(m.summary) <= 130, name
        params = list(inspect.signature(m.fn).parameters.values())
        assert params[0].kind is inspect.Parameter.POSITIONAL_OR_KEYWORD
        for p in params[1:]:
            assert p.kind is inspect.Parameter.KEYWORD_ONLY, (name, p.name)
            assert p.default is None or type(p.default) in (int, float, str, bool), (name, p.name)
            if p.default is None:
                assert p.name in ("features", "logits"), (name, p.name)
        assert m.fn.__doc__, name
        assert (inspect.getmodule(m.fn).__doc__ or "").strip(), name
