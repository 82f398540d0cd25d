"""Recorder under torch.distributed: 2 CPU processes (gloo) write the same store as one
process recording the ranks' batches in rank order. One process-group launch per module."""
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import dataprune as dp

sys.path.insert(0, str(Path(__file__).parent))
import _ddp_worker as W  # noqa: E402

pytestmark = pytest.mark.timeout(240)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def ddp_out(tmp_path_factory):
    out = tmp_path_factory.mktemp("ddp")
    env = {**os.environ, "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(free_port()),
           "WORLD_SIZE": "2", "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join([str(Path(__file__).parents[1] / "src"),
                                          os.environ.get("PYTHONPATH", "")])}
    procs = [subprocess.Popen([sys.executable, W.__file__, str(out)], env={**env, "RANK": str(r)},
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
             for r in range(2)]
    logs = []
    try:
        for p in procs:
            logs.append(p.communicate(timeout=180)[0])
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    for r, (p, log) in enumerate(zip(procs, logs)):
        assert p.returncode == 0, f"rank {r} failed:\n{log}"
    return out


def single_process(name: str, out: Path) -> dp.Dynamics:
    _, _, epochs, _, _, _ = W.SCENARIOS[name]
    rec = dp.Recorder(out=out, **W.recorder_kwargs(name))
    for epoch in range(epochs):
        for rank in range(2):  # rank order: a padded duplicate gets the highest rank's value
            for idx, logits, y, h in W.stream(name, rank, 2, epoch):
                rec.update(idx, logits, y, features=h)
        rec.end_epoch()
    return dp.Dynamics.open(out)


@pytest.mark.parametrize("name", list(W.SCENARIOS))
def test_store_identical_to_single_process(ddp_out, tmp_path, name):
    got = dp.Dynamics.open(ddp_out / name)
    ref = single_process(name, tmp_path / "ref")
    assert got.epochs == ref.epochs == W.SCENARIOS[name][2]
    files = sorted(f.name for f in (ddp_out / name).glob("*.npy"))
    assert files == sorted(f.name for f in (tmp_path / "ref").glob("*.npy"))
    for f in files:
        a, b = np.load(ddp_out / name / f), np.load(tmp_path / "ref" / f)
        assert a.dtype == b.dtype and a.tobytes() == b.tobytes(), f
    assert got.fingerprint == ref.fingerprint
    n, _, _, drop, _, keep = W.SCENARIOS[name]
    if keep == "full":
        prob = np.asarray(got.prob, float)
        tdds = np.asarray(got["tdds_d"], float)
        assert np.isnan(tdds[0]).all() and (not drop) == (not np.isnan(tdds[1:]).any())
        if drop:  # DistributedSampler(drop_last) and DataLoader(drop_last) leave samples unseen
            assert np.isnan(prob).any(1).all()
        else:     # padding duplicates are idempotent: every sample observed once per epoch
            assert not np.isnan(prob).any()
    else:
        np.testing.assert_array_equal(dp.score("dyn-unc", got, window=2),
                                      dp.score("dyn-unc", ref, window=2))


def test_rank_dependent_duplicates_take_the_highest_rank(ddp_out):
    # N=7 on 2 ranks: one sample is padded onto rank 1 while rank 0 also sees it.
    prob = np.asarray(dp.Dynamics.open(ddp_out / "n7_rankdep").prob, float)
    import torch
    for epoch in range(3):
        table = torch.randn(7, W.C, generator=torch.Generator().manual_seed(100 + epoch))
        seen = {int(i): r for r in range(2) for b in W.stream("n7_rankdep", r, 2, epoch)
                for i in b[0]}
        for i, r in seen.items():
            logits = table[i].clone()
            logits[i % W.C] += 0.7 * r
            p = torch.softmax(logits, 0)[i % W.C].item()
            assert abs(prob[epoch, i] - p) < 1e-3
        dup = [i for i in range(7) if sum(int(i) in b[0].tolist() for r in range(2)
                                          for b in W.stream("n7_rankdep", r, 2, epoch)) > 1]
        assert len(dup) == 1 and seen[dup[0]] == 1


def test_shards_do_not_trigger_the_never_seen_warning(ddp_out):
    """Each rank sees half of every epoch; the merged epochs see every sample (no drop_last),
    so the Recorder's "never seen in a full epoch" warning must not fire."""
    warned = json.loads((ddp_out / "coverage_warnings.json").read_text())
    assert set(warned) == set(W.SCENARIOS)
    for name in ("n7", "n7_rankdep", "n1000"):
        assert warned[name] == [], (name, warned[name])


def test_only_rank0_touches_disk(ddp_out):
    assert (ddp_out / "probe" / "meta.json").exists()
    assert not (ddp_out / "probe_rank1_must_not_exist").exists()
    prob = np.asarray(dp.Dynamics.open(ddp_out / "probe").prob, float)[0]
    assert not np.isnan(prob[:2]).any() and np.isnan(prob[2:]).all()
