"""The Recorder writes the same store bytes as before its split into modules (issue 19).

Fixed, deterministic (indices, logits, targets) batches: several epochs, shuffled, with
duplicates, unseen samples and NaN rows; keep_history full (every signal, extra signals
included) and the ring mode; a resumed recording; and the scenarios of the 2-rank DDP
harness (tests/_ddp_worker.py) replayed in rank order, which tests/test_distributed.py
proves equal to the 2-rank merge. The sha256 of every file of every store is compared.

The digests below were produced by the code BEFORE the split (commit ddae368), with
``meta.json``'s ``created`` time pinned; a change in any of them changes the store format.
"""
import hashlib
import sys
import time
from pathlib import Path

import pytest
import torch

import dataprune as dp
from dataprune.record import ALL_SIGNALS, EXTRA_SIGNALS

sys.path.insert(0, str(Path(__file__).parent))
import _ddp_worker as W  # noqa: E402

N, C, D = 40, 4, 3


@pytest.fixture(autouse=True)
def fixed_time(monkeypatch):
    """``meta.json`` records its creation time: pin it so the bytes are reproducible."""
    real = time.strftime
    monkeypatch.setattr(time, "strftime",
                        lambda fmt, *t: real(fmt, time.gmtime(0)) if not t else real(fmt, *t))


def batches(epoch: int, *, nan: bool = False):
    """(indices, logits, targets, features) of one epoch: a shuffled permutation of all but
    a few samples (which ones depends on the epoch), a duplicate, and optionally a NaN row."""
    g = torch.Generator().manual_seed(1000 + epoch)
    order = torch.randperm(N, generator=g)[: N - 3 - epoch % 2]
    order = torch.cat([order, order[:2]])  # duplicates in the epoch: the last one wins
    logits = torch.randn(len(order), C, generator=g) * (1 + epoch)
    if nan:
        logits[5, 1] = float("nan")
    feats = torch.randn(len(order), D, generator=g)
    for b in range(0, len(order), 8):
        sl = slice(b, b + 8)
        yield order[sl], logits[sl], order[sl] % C, feats[sl]


def record(rec: dp.Recorder, epochs: range, *, nan: bool = False) -> None:
    for epoch in epochs:
        for idx, logits, y, h in batches(epoch, nan=nan):
            rec.update(idx, logits, y, features=h)
        rec.end_epoch()


def full_store(out: Path) -> None:
    rec = dp.Recorder(N, out, C, signals=list(ALL_SIGNALS) + list(EXTRA_SIGNALS), epochs=3,
                      nan_policy="omit")
    record(rec, range(5), nan=True)  # more epochs than planned: the arrays grow
    rec.finish()


def ring_store(out: Path) -> None:
    with dp.Recorder(N, out, C, epochs=6, keep_history="window", window=3) as rec:
        record(rec, range(6))


def resumed_store(out: Path) -> None:
    rec = dp.Recorder(N, out, C, signals=["prob", "correct", "tdds_d"], epochs=4,
                      view="clean", meta={"run": "bytes"})
    record(rec, range(2))
    state, fingerprint = rec.state_dict(), rec.fingerprint  # a checkpoint after 2 epochs
    record(rec, range(2, 3))  # written after the checkpoint: discarded on resume
    rec.close()
    rec = dp.Recorder.resume(out, epochs=2, fingerprint=fingerprint)
    rec.load_state_dict(state)
    record(rec, range(2, 4))
    rec.close()


def ddp_replay(name: str, out: Path) -> None:
    _, _, epochs, _, _, _ = W.SCENARIOS[name]
    rec = dp.Recorder(out=out, **W.recorder_kwargs(name))
    for epoch in range(epochs):
        for rank in range(2):
            for idx, logits, y, h in W.stream(name, rank, 2, epoch):
                rec.update(idx, logits, y, features=h)
        rec.end_epoch()
    rec.close()


def digests(store: Path) -> dict[str, str]:
    return {f.name: hashlib.sha256(f.read_bytes()).hexdigest()[:16] for f in sorted(store.iterdir())}


BUILDERS = {"full": full_store, "ring": ring_store, "resumed": resumed_store,
            **{f"ddp_{name}": (lambda out, name=name: ddp_replay(name, out)) for name in W.SCENARIOS}}

#: produced by the code before the split (commit ddae368)
EXPECTED: dict[str, dict[str, str]] = {
    "full": {
        "correct.npy": "8a14204099ea24db", "el2n.npy": "8be1f246fd05a272",
        "entropy.npy": "67dbe4c4f94f5df3", "grand.npy": "39b6610de9f3b3aa",
        "labels.npy": "fa1d9510080a2f11", "margin.npy": "45f145bcf9d8ea28",
        "meta.json": "c4608f9cda889bff", "prob.npy": "57cee30d72b87a7a",
        "tdds_d.npy": "dcdde74b4243a817",
    },
    "ring": {
        "labels.npy": "fa1d9510080a2f11", "meta.json": "03d6bf76a6a8df86",
        "prob_ring.npy": "1417fe6dad15c0a6", "unc_count_a.npy": "b6414fd6094ff0b7",
        "unc_count_b.npy": "d3dd0fbcd4089a88", "unc_sum_a.npy": "b082fd93d0f0a5ed",
        "unc_sum_b.npy": "3dd606e971e6d5bd",
    },
    "resumed": {
        "correct.npy": "2e1bfbea55ae291f", "labels.npy": "fa1d9510080a2f11",
        "meta.json": "10eb9589f86187cb", "prob.npy": "a656d617a4d612e6",
        "tdds_d.npy": "170672b1b84e6e4a",
    },
    "ddp_n7": {
        "correct.npy": "fa4faec35813cc22", "el2n.npy": "030ed22f52c5d73a",
        "entropy.npy": "ebc686a46d976834", "grand.npy": "2ed15cf49053c4bd",
        "labels.npy": "2ffc279ac7fb2af8", "margin.npy": "249a96613201e8a8",
        "meta.json": "7b10d013517a4f16", "prob.npy": "30a8fd8c612f3f54",
        "tdds_d.npy": "47b25f8f57382cff",
    },
    "ddp_n7_drop": {
        "correct.npy": "b28e6ba02cb9a7ed", "el2n.npy": "adc6ccc55e4b615b",
        "entropy.npy": "285c42e042ab0172", "grand.npy": "ca6a4f1382a16396",
        "labels.npy": "2ffc279ac7fb2af8", "margin.npy": "4f11e959e9afad55",
        "meta.json": "afe76078e1adb5ac", "prob.npy": "52cf453667e62118",
        "tdds_d.npy": "5c1425ae0894f2e8",
    },
    "ddp_n7_rankdep": {
        "correct.npy": "8b748ef063746615", "el2n.npy": "4abb77cd4da9ad6d",
        "entropy.npy": "02e213068463cf99", "grand.npy": "f03c6820e1b3a27a",
        "labels.npy": "2ffc279ac7fb2af8", "margin.npy": "51ddbdde7e9674d4",
        "meta.json": "5f5f6ecd41d88e99", "prob.npy": "16f0049eb2bb5d48",
        "tdds_d.npy": "bf316a36bcd36602",
    },
    "ddp_n1000": {
        "correct.npy": "1664260832b1d614", "el2n.npy": "982ecd7f43b37a3d",
        "entropy.npy": "7cea8ed875833046", "grand.npy": "dbc6da21970a3c55",
        "labels.npy": "531a9014f442396a", "margin.npy": "681370c6f9051447",
        "meta.json": "547d9ecdc87b30b8", "prob.npy": "47fc4e1b016cd8ef",
        "tdds_d.npy": "c8a6a55b5cb8c953",
    },
    "ddp_n1000_drop": {
        "correct.npy": "345641c69ae748e5", "el2n.npy": "99485922486bba73",
        "entropy.npy": "2e3393f6f99b17c5", "grand.npy": "a392a0ba6643116d",
        "labels.npy": "a429a587e8dc785b", "margin.npy": "b7fe589eeef3e093",
        "meta.json": "15f73d064026b76b", "prob.npy": "1e5353727b80393b",
        "tdds_d.npy": "09ab076ef113e04f",
    },
    "ddp_n1000_none": {
        "labels.npy": "531a9014f442396a", "meta.json": "5303b1705f4c2ea2",
        "prob_ring.npy": "97f793a2c15b5ffe", "unc_count_a.npy": "9aab9d164f2cf4a1",
        "unc_count_b.npy": "376736d0340e94f8", "unc_sum_a.npy": "8c6e377d1743ffda",
        "unc_sum_b.npy": "586f9fcee747efce",
    },
}


@pytest.mark.parametrize("name", list(BUILDERS))
def test_store_bytes_unchanged(tmp_path, name):
    torch.set_num_threads(1)
    BUILDERS[name](tmp_path / name)
    assert digests(tmp_path / name) == EXPECTED[name]
