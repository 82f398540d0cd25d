"""dataprune.integrations.lightning.RecordDynamics with a real Lightning Trainer: the store
equals a plain Recorder fed the same batches, single-process and under DDP (gloo, 2 CPU
processes); resume from an end-of-epoch checkpoint continues the store; mid-epoch refused;
dict batches, N and C inferred; PruneAtCallback prunes inside one fit (also under DDP, and
resumed)."""
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("lightning")
import dataprune as dp  # noqa: E402
from dataprune.integrations.lightning import PruneAtCallback  # noqa: E402
from dataprune.train.prune_at import prune_scores, resolve_method_params  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent))
import _lightning_app as app  # noqa: E402
from conftest import subprocess_env  # noqa: E402
from helpers_docs import doc_block  # noqa: E402
from helpers_record import assert_same_store, replay  # noqa: E402

pytestmark = pytest.mark.timeout(300)


def test_single_process_store_equals_recorder(tmp_path):
    app.fit(tmp_path, signals=["prob", "correct", "margin"], view="clean")
    dyn = dp.Dynamics.open(tmp_path / "dynamics")
    assert dyn.epochs == 2 and dyn.prob.shape == (2, app.N) and dyn.meta["view"] == "clean"
    assert not np.isnan(np.asarray(dyn.prob, float)).any()
    ref = replay(tmp_path, 1, app.N, app.C, 2, signals=["prob", "correct", "margin"])
    assert_same_store(tmp_path / "dynamics", ref)


def test_existing_store_refused_unless_force(tmp_path):
    app.fit(tmp_path, epochs=1)
    with pytest.raises(dp.DataPruneError):
        app.fit(tmp_path, epochs=1)
    app.fit(tmp_path, epochs=1, force=True)


def test_ddp_two_processes_equals_recorder(tmp_path):
    env = subprocess_env()
    run = subprocess.run([sys.executable, app.__file__, str(tmp_path), "2"], env=env,
                         capture_output=True, text=True, timeout=240)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    dyn = dp.Dynamics.open(tmp_path / "dynamics")
    assert dyn.epochs == 2 and not np.isnan(np.asarray(dyn.prob, float)).any()
    assert_same_store(tmp_path / "dynamics", replay(tmp_path, 2, app.N, app.C, 2))


def test_resume_from_end_of_epoch_checkpoint(tmp_path):
    from lightning.pytorch.callbacks import ModelCheckpoint
    full = tmp_path / "full"
    full.mkdir()
    app.fit(full, epochs=2)
    part = tmp_path / "part"
    ckpt = ModelCheckpoint(dirpath=part / "ckpt", save_on_train_epoch_end=True, save_last=True)
    app.fit(part, epochs=1, callbacks=(ckpt,))
    app.fit(part, epochs=2, ckpt_path=str(part / "ckpt" / "last.ckpt"),
            callbacks=(ModelCheckpoint(dirpath=part / "ckpt2"),))
    # epoch 0 kept as written; epoch 1 recorded after the resume (Lightning does not restore
    # the shuffling RNG, so its batches may differ from the uninterrupted run's)
    got, ref = dp.Dynamics.open(part / "dynamics"), dp.Dynamics.open(full / "dynamics")
    assert got.epochs == 2
    assert got.prob[0].tobytes() == ref.prob[0].tobytes()
    assert not np.isnan(np.asarray(got.prob[1], float)).any()


def test_resume_from_mid_epoch_checkpoint_refused(tmp_path):
    from lightning.pytorch.callbacks import ModelCheckpoint
    ckpt = ModelCheckpoint(dirpath=tmp_path / "ckpt", every_n_train_steps=2, save_top_k=-1,
                           filename="{step}")
    app.fit(tmp_path, epochs=1, callbacks=(ckpt,))
    with pytest.raises(dp.DataPruneError, match="mid-epoch"):
        app.fit(tmp_path, epochs=1, ckpt_path=str(tmp_path / "ckpt" / "step=2.ckpt"),
                callbacks=(ModelCheckpoint(dirpath=tmp_path / "ckpt2"),))


def test_training_step_without_logits_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(app.TinyModule, "training_step", lambda self, batch, i: torch.nn.functional
                        .cross_entropy(self.net(batch[0]), batch[1]))
    with pytest.raises(dp.DataPruneError, match="logits"):
        app.fit(tmp_path, epochs=1)


def test_doc_example_runs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    g = torch.Generator().manual_seed(0)
    scope = {"train_set": torch.utils.data.TensorDataset(torch.randn(40, 8, generator=g),
                                                         torch.arange(40) % 3)}
    exec(compile(doc_block("import lightning as L"), "integrations.md", "exec"), scope)
    dyn = dp.Dynamics.open(tmp_path / "runs/lightning/dynamics")
    assert dyn.epochs == 20 and dyn.num_samples == 40


# --- batches of other shapes, N and C inferred ---

def test_dict_batches_with_own_keys_record_as_tuples(tmp_path):
    app.fit(tmp_path / "tuple")
    app.fit(tmp_path / "dict", data=app.DictItems("own"), target_key="label", index_key="i")
    assert_same_store(tmp_path / "dict" / "dynamics", tmp_path / "tuple" / "dynamics")


def test_with_index_over_dict_items_records_as_tuples(tmp_path):
    app.fit(tmp_path / "tuple")
    app.fit(tmp_path / "items", data=dp.WithIndex(app.DictItems("target")))
    assert_same_store(tmp_path / "items" / "dynamics", tmp_path / "tuple" / "dynamics")


def test_num_samples_and_num_classes_inferred(tmp_path):
    app.fit(tmp_path, num_samples=None, num_classes=None)
    dyn = dp.Dynamics.open(tmp_path / "dynamics")
    assert (dyn.num_samples, dyn.num_classes) == (app.N, app.C)  # len(dataset), logits' width
    assert_same_store(tmp_path / "dynamics", replay(tmp_path, 1, app.N, app.C, 2))


def test_batch_without_target_or_index_named(tmp_path):
    x, y = app.base().tensors
    with pytest.raises(dp.DataPruneError, match="carry no target") as err:  # already wrapped
        app.fit(tmp_path / "a", data=dp.WithIndex(torch.utils.data.TensorDataset(x)), epochs=1)
    assert "wrap" not in str(err.value)
    with pytest.raises(dp.DataPruneError, match="wrap the dataset in dataprune.WithIndex"):
        app.fit(tmp_path / "b", data=torch.utils.data.TensorDataset(x, y), epochs=1)
    with pytest.raises(dp.DataPruneError, match=r"keys \['target', 'i'\]"):
        app.fit(tmp_path / "c", data=app.DictItems("own"), index_key="i", epochs=1)


# --- pruning inside one fit ---

SIGNALS = ["prob", "correct", "el2n"]


def epochs_seen(seen, epoch):
    return torch.cat([b[1] for b in seen if b[0] == epoch]).tolist()


def expected_keep(store, prune_at=2):
    params = resolve_method_params(app.PRUNE["method"], prune_at)
    return prune_scores(dp.Dynamics.open(store), app.PRUNE["method"], app.PRUNE["prune_ratio"], **params)


def test_prune_at_callback_records_t_epochs_then_trains_on_the_keep(tmp_path):
    prune, model = app.prune_fit(tmp_path)
    dyn = dp.Dynamics.open(tmp_path / "dynamics")
    assert dyn.epochs == 2 and dyn.signals == SIGNALS
    assert_same_store(tmp_path / "dynamics", replay(tmp_path, 1, app.N, app.C, 2, signals=SIGNALS))
    keep = expected_keep(tmp_path / "dynamics")
    assert prune.keep.tolist() == keep.tolist() and len(keep) == app.N - round(0.3 * app.N)
    for epoch in range(4):  # every sample once per epoch before T, every kept one after
        want = range(app.N) if epoch < 2 else keep.tolist()
        assert sorted(epochs_seen(model.seen, epoch)) == sorted(want)
    assert sorted(set(model.validated)) == [0, 1, 2, 3]  # Lightning still ends each epoch itself


def test_prune_at_callback_under_ddp(tmp_path):
    env = subprocess_env()
    run = subprocess.run([sys.executable, app.__file__, str(tmp_path), "2", "prune"], env=env,
                         capture_output=True, text=True, timeout=240)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    keep = expected_keep(tmp_path / "dynamics")
    assert all(torch.load(tmp_path / f"keep_rank{r}.pt").tolist() == keep.tolist() for r in range(2))
    seen = [torch.load(tmp_path / f"batches_rank{r}.pt") for r in range(2)]
    for epoch in range(4):  # the ranks split each epoch: the full set before T, the keep after
        shards = [epochs_seen(s, epoch) for s in seen]
        assert set(shards[0]) | set(shards[1]) == set(range(app.N) if epoch < 2 else keep.tolist())
        assert len(shards[0]) == len(shards[1]) < app.N  # PruneAt pads like DistributedSampler
    assert_same_store(tmp_path / "dynamics", replay(tmp_path, 2, app.N, app.C, 2, signals=SIGNALS))


def test_prune_at_callback_resumes_like_an_uninterrupted_fit(tmp_path):
    from lightning.pytorch.callbacks import ModelCheckpoint
    every_epoch = ModelCheckpoint(dirpath=tmp_path / "ckpt", save_on_train_epoch_end=True,
                                  save_top_k=-1, every_n_epochs=1, filename="{epoch}")
    full, model = app.prune_fit(tmp_path, callbacks=(every_epoch,))
    shutil.copytree(tmp_path / "dynamics", tmp_path / "full_store")
    # epoch 0: the recorder resumes the store; epoch 2: after T, the keep comes from the checkpoint
    for done in (0, 2):
        prune, resumed = app.prune_fit(tmp_path, ckpt_path=str(tmp_path / "ckpt" / f"epoch={done}.ckpt"),
                                       callbacks=(ModelCheckpoint(dirpath=tmp_path / f"again{done}"),))
        assert prune.keep.tolist() == full.keep.tolist()
        assert_same_store(tmp_path / "dynamics", tmp_path / "full_store")
        for epoch in range(done + 1, 4):  # the same batches in the same order (seeded by epoch)
            assert epochs_seen(resumed.seen, epoch) == epochs_seen(model.seen, epoch)


def test_prune_at_callback_refuses_a_trainer_it_cannot_prune(tmp_path):
    with pytest.raises(dp.DataPruneError, match="reload_dataloaders_every_n_epochs=0"):
        app.prune_fit(tmp_path / "a", trainer_kwargs={"reload_dataloaders_every_n_epochs": 0})
    with pytest.raises(dp.DataPruneError, match="max_epochs=2 with prune_at=2"):
        app.prune_fit(tmp_path / "b", epochs=2)
    sampler = dp.PruneAt(app.N, prune_at=1)
    prune = PruneAtCallback(sampler, tmp_path / "c", **app.PRUNE)
    loader = torch.utils.data.DataLoader(app.dataset(), batch_size=4, shuffle=True)  # not the sampler
    with pytest.raises(dp.DataPruneError, match="not the callback's PruneAt"):
        app.trainer(tmp_path, 1, 3, [prune], reload_dataloaders_every_n_epochs=1).fit(app.TinyModule(), loader)


@pytest.mark.parametrize("kwargs, match", [
    (dict(method="el2n", prune_ratio=0.0), "prune_ratio=0.0"),
    (dict(method="dyn-unc", prune_ratio=0.3, params={"window": 5}), "window=5"),
    (dict(method="el2n", prune_ratio=0.3, signals=["prob"]), "lack \\['el2n'\\]"),
    (dict(method="nope", prune_ratio=0.3), "unknown method"),
])
def test_prune_at_callback_checks_its_plan_when_built(tmp_path, kwargs, match):
    with pytest.raises(dp.DataPruneError, match=match):
        PruneAtCallback(dp.PruneAt(app.N, prune_at=3), tmp_path, **kwargs)
    with pytest.raises(dp.DataPruneError, match="expected a dataprune.PruneAt"):
        PruneAtCallback(torch.utils.data.RandomSampler(range(3)), tmp_path, method="el2n", prune_ratio=0.3)


def test_prune_doc_example_runs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    g = torch.Generator().manual_seed(0)
    scope = {"train_set": torch.utils.data.TensorDataset(torch.randn(40, 8, generator=g),
                                                         torch.arange(40) % 3)}
    exec(compile(doc_block("import lightning as L"), "integrations.md", "exec"), scope)  # Module
    exec(compile(doc_block("# Lightning: prune inside one fit"), "integrations.md", "exec"), scope)
    assert dp.Dynamics.open(tmp_path / "runs/lightning-once/dynamics").epochs == 3
    assert len(scope["prune"].keep) == 40 - round(0.3 * 40)
