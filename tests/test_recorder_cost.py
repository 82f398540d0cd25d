"""Recorder.update costs O(B log B) per batch: nothing of size N is allocated per step, and
the in-batch dedupe (last occurrence wins) matches a plain loop."""
import numpy as np
import pytest
import torch

import dataprune as dp
from dataprune.recording.signals import Batch
from dataprune.recording.signals import correct as _correct
from dataprune.recording.signals import prob as _prob
from dataprune.recording.table import last_occurrence_dest as _last_occurrence_dest


def reference_dest(safe: list[int], spare: int) -> list[int]:
    """Slow obvious loop: the last position of each index keeps it, the rest go to spare."""
    last = {v: i for i, v in enumerate(safe)}
    return [v if last[v] == i else spare for i, v in enumerate(safe)]


def test_last_occurrence_hand_case():
    # [4, 1, 4, spare]: the first 4 is overwritten by the later one; spare rows stay spare
    got = _last_occurrence_dest(torch.tensor([4, 1, 4, 9]), 9)
    assert got.tolist() == [9, 1, 4, 9]


@pytest.mark.parametrize("seed", range(5))
def test_last_occurrence_matches_loop(seed):
    g = torch.Generator().manual_seed(seed)
    n = int(torch.randint(1, 20, (1,), generator=g))
    b = int(torch.randint(0, 40, (1,), generator=g))
    safe = torch.randint(0, n + 1, (b,), generator=g)  # n itself = a rejected row
    assert _last_occurrence_dest(safe, n).tolist() == reference_dest(safe.tolist(), n)


def largest_allocation(fn) -> int:
    """Bytes of the largest single CPU allocation made while ``fn()`` runs (torch profiler)."""
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU],
                                profile_memory=True) as prof:
        fn()
    return max((e.cpu_memory_usage for e in prof.events()), default=0)


@pytest.mark.parametrize("signals", [dp.record.DEFAULT_SIGNALS, dp.record.ALL_SIGNALS])
def test_update_allocates_nothing_of_size_n(tmp_path, signals):
    n, b, c = 2_000_000, 64, 10
    g = torch.Generator().manual_seed(0)
    rec = dp.Recorder(n, tmp_path / "s", c, signals=signals, epochs=1)
    idx = torch.randint(0, n, (b,), generator=g)
    idx[1] = idx[0]  # an in-batch duplicate
    logits, y = torch.randn(b, c, generator=g), torch.randint(0, c, (b,), generator=g)
    rec.update(idx, logits, y)  # the first update allocates the (N+1,) epoch buffers, once
    biggest = largest_allocation(lambda: rec.update(idx, logits, y))
    assert 0 < biggest < 64 * b * c, f"update allocated {biggest} bytes at N={n}, B={b}"
    rec.end_epoch()
    prob = np.asarray(dp.Dynamics.open(tmp_path / "s").prob, float)[0]
    assert np.isfinite(prob[idx.numpy()]).all() and np.isnan(prob).sum() == n - len(set(idx.tolist()))


@pytest.mark.parametrize("seed", range(3))
def test_finite_rows_and_correct_match_obvious_formulas(tmp_path, seed):
    # Rows with NaN, +inf or -inf anywhere are omitted; ties at the max: the first one counts
    # (argmax), e.g. logits [1, 3, 3] with y=2 -> correct 0, with y=1 -> correct 1.
    g = torch.Generator().manual_seed(seed)
    n, c = 40, 4
    logits = torch.randint(-2, 3, (n, c), generator=g).float()  # small ints: many ties
    pick = torch.rand(n, c, generator=g)
    logits[pick < 0.05] = float("nan")
    logits[(pick >= 0.05) & (pick < 0.08)] = float("inf")
    logits[(pick >= 0.08) & (pick < 0.11)] = float("-inf")
    y = torch.randint(0, c, (n,), generator=g)
    rec = dp.Recorder(n, tmp_path / "s", c, nan_policy="omit", epochs=1)
    rec.update(torch.arange(n), logits, y)
    rec.end_epoch()
    dyn = dp.Dynamics.open(tmp_path / "s")
    ok = torch.isfinite(logits).all(1).numpy()
    assert 0 < ok.sum() < n
    expect = np.where(ok, (logits.argmax(1) == y).numpy(), -1)
    assert dyn.correct[0].tolist() == expect.tolist()
    assert (np.isnan(np.asarray(dyn.prob[0], float)) == ~ok).all()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_update_never_syncs_with_the_host_on_cuda(tmp_path):
    n, b, c = 1000, 64, 10
    g = torch.Generator().manual_seed(0)
    idx = torch.randint(0, n, (b,), generator=g).cuda()
    logits, y = torch.randn(b, c, generator=g).cuda(), torch.randint(0, c, (b,), generator=g).cuda()
    rec = dp.Recorder(n, tmp_path / "s", c, signals=dp.record.ALL_SIGNALS, epochs=1)
    rec.update(idx, logits, y)  # allocates the buffers
    torch.cuda.set_sync_debug_mode("error")
    try:
        rec.update(idx, logits, y)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    rec.end_epoch()


def test_correct_hand_case_both_paths():
    # logits [1, 3, 3]: the max 3 is tied (total = e^-2 + 1 + 1 = 2.14 >= 2), argmax = 1:
    # y=1 -> correct 1, y=2 -> 0; [0, 5, 1] with y=1 -> 1 (no tie, total = 1.02), y=2 -> 0
    logits = torch.tensor([[1.0, 3, 3], [1, 3, 3], [0, 5, 1], [0, 5, 1]])
    batch = Batch(logits, torch.tensor([1, 2, 1, 2]))
    for search_all in (False, True):
        assert _correct(batch, search_all=search_all).tolist() == [1.0, 0.0, 1.0, 0.0]


@pytest.mark.parametrize("seed", range(4))
def test_batch_pieces_match_softmax_and_argmax(seed):
    # The softmax from (max, exp, total) and both `correct` paths against torch's own on
    # rows with many ties (small integers) and with spreads of up to ~200 units (beyond the
    # exp floor at -87, where the floor's 1.6e-38 stands in for a smaller probability).
    g = torch.Generator().manual_seed(seed)
    b, c = 64, int(torch.randint(2, 300, (1,), generator=g))
    ties = torch.randint(-2, 3, (b // 2, c), generator=g).float()
    scale = torch.rand(b // 2, 1, generator=g) * 40
    logits = torch.cat([ties, torch.randn(b // 2, c, generator=g) * scale])
    y = torch.where(torch.rand(b, generator=g) < 0.5, logits.argmax(1), torch.randint(0, c, (b,), generator=g))
    batch = Batch(logits, y)
    # float32 rounds logits - max (|.| <= 87) by up to 87 * 2**-24 = 5.2e-6, relative in exp
    want = torch.softmax(logits.double(), 1)
    torch.testing.assert_close(batch.p.double(), want, rtol=1e-5, atol=2e-38)
    torch.testing.assert_close(_prob(batch).double(), want[torch.arange(b), y], rtol=1e-5, atol=2e-38)
    expect = [float(int(torch.argmax(row)) == int(t)) for row, t in zip(logits, y)]  # row by row
    for search_all in (False, True):
        assert _correct(batch, search_all=search_all).tolist() == expect
