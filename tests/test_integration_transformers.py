"""dataprune.integrations.transformers with a real Hugging Face Trainer on a tiny BERT built
from a config (nothing downloaded): 2 epochs, N samples, the index column survives
remove_unused_columns, and the store equals a plain Recorder fed the same batches,
single-process and under DDP (torchrun, gloo, 2 CPU processes); PruneAtTrainer prunes inside
one train() (also under torchrun)."""
import os
import shutil
import subprocess
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

transformers = pytest.importorskip("transformers")
import dataprune as dp  # noqa: E402
from dataprune.integrations.transformers import INDEX_KEY, PruneAtTrainer, with_index  # noqa: E402
from dataprune.train.prune_at import prune_scores, resolve_method_params  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent))
from _transformers_app import (PRUNE, C, N, SIGNALS, make_trainer, prune_train, tiny_dataset,  # noqa: E402
                               tiny_model, train)
from conftest import subprocess_env  # noqa: E402
from helpers_docs import doc_block  # noqa: E402
from helpers_record import assert_same_store, replay  # noqa: E402

pytestmark = pytest.mark.timeout(300)
APP = Path(__file__).with_name("_transformers_app.py")


def test_trainer_records_two_epochs_like_a_recorder(tmp_path):
    train(tmp_path, signals=SIGNALS)
    dyn = dp.Dynamics.open(tmp_path / "dynamics")
    assert dyn.epochs == 2 and dyn.prob.shape == (2, N) and dyn.num_classes == C
    assert not np.isnan(np.asarray(dyn.prob, float)).any()
    assert dyn.labels.tolist() == [i % C for i in range(N)]
    assert_same_store(tmp_path / "dynamics", replay(tmp_path, 1, N, C, 2, signals=SIGNALS))


def test_ddp_torchrun_two_processes_equals_recorder(tmp_path):
    env = subprocess_env()
    run = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone",
                          "--nproc_per_node", "2", str(APP), str(tmp_path)],
                         env=env, capture_output=True, text=True, timeout=240)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    dyn = dp.Dynamics.open(tmp_path / "dynamics")
    assert dyn.epochs == 2 and not np.isnan(np.asarray(dyn.prob, float)).any()
    assert dyn.labels.tolist() == [i % C for i in range(N)]
    seen = [torch.load(tmp_path / f"batches_rank{r}.pt") for r in range(2)]
    for epoch in range(2):  # the ranks shared the epoch: each saw a part, together all N
        idx = [torch.cat([b[1] for b in batches if b[0] == epoch]) for batches in seen]
        assert all(len(set(i.tolist())) < N for i in idx)
        assert set(torch.cat(idx).tolist()) == set(range(N))
    for batches in seen:  # every recorded row is its own sample's (the label of i is i % C)
        assert all(torch.equal(y, idx % C) for _, idx, _, y in batches)
    assert_same_store(tmp_path / "dynamics", replay(tmp_path, 2, N, C, 2, signals=SIGNALS))


def test_missing_index_column_refused(tmp_path):
    trainer = make_trainer(tmp_path)
    trainer.train_dataset = tiny_dataset()
    with pytest.raises(dp.DataPruneError, match=INDEX_KEY):
        trainer.train()


def test_resume_without_checkpoint_refused_and_store_not_overwritten(tmp_path):
    make_trainer(tmp_path).train()
    with pytest.raises(dp.DataPruneError, match="no checkpoint in"):
        make_trainer(tmp_path).train(resume_from_checkpoint=True)
    with pytest.raises(dp.DataPruneError):
        make_trainer(tmp_path).train()
    make_trainer(tmp_path, force=True).train()


def test_with_index_adds_a_column_to_datasets_like_objects():
    class Columns(list):  # the one method with_index uses of datasets.Dataset
        def add_column(self, name, values):
            return [{**row, name: v} for row, v in zip(self, values)]

    assert with_index(Columns([{"a": 1}, {"a": 2}])) == [{"a": 1, INDEX_KEY: 0}, {"a": 2, INDEX_KEY: 1}]


def test_doc_example_runs(tmp_path, monkeypatch):
    code = doc_block("from dataprune.integrations.transformers import RecordDynamicsTrainer")
    monkeypatch.chdir(tmp_path)
    scope = {"model": tiny_model(), "train_dataset": tiny_dataset(),
             "training_args": make_trainer(tmp_path / "unused").args}
    exec(compile(code, "integrations.md", "exec"), scope)
    dyn = dp.Dynamics.open(tmp_path / "runs/hf/dynamics")
    assert dyn.epochs == 2 and dyn.num_samples == N


# --- pruning inside one train() ---

PRUNE_SIGNALS = ["prob", "correct", "el2n"]


def expected_keep(store):
    params = resolve_method_params(PRUNE["method"], PRUNE["prune_at"])
    return prune_scores(dp.Dynamics.open(store), PRUNE["method"], PRUNE["prune_ratio"], **params)


def trained_in(trained, epoch):
    return torch.cat([idx for e, idx in trained if e == epoch]).tolist()


def test_prune_at_trainer_records_t_epochs_then_trains_on_the_keep(tmp_path):
    trainer = prune_train(tmp_path)
    dyn = dp.Dynamics.open(tmp_path / "dynamics")
    assert dyn.epochs == 2 and dyn.signals == PRUNE_SIGNALS
    assert_same_store(tmp_path / "dynamics", replay(tmp_path, 1, N, C, 2, signals=PRUNE_SIGNALS))
    keep = expected_keep(tmp_path / "dynamics")
    assert trainer.prune_keep.tolist() == keep.tolist() and len(keep) == N - round(0.3 * N)
    for epoch in range(4):  # every sample once per epoch before T, every kept one after
        assert sorted(trained_in(trainer.trained, epoch)) == (list(range(N)) if epoch < 2 else keep.tolist())
    assert trainer.state.global_step == 2 * 3 + 2 * 2  # ceil(10/4) steps, then ceil(7/4)


def test_prune_at_trainer_under_torchrun(tmp_path):
    env = subprocess_env()
    run = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone",
                          "--nproc_per_node", "2", str(APP), str(tmp_path), "prune"],
                         env=env, capture_output=True, text=True, timeout=240)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    keep = expected_keep(tmp_path / "dynamics")
    assert all(torch.load(tmp_path / f"keep_rank{r}.pt").tolist() == keep.tolist() for r in range(2))
    trained = [torch.load(tmp_path / f"trained_rank{r}.pt") for r in range(2)]
    for epoch in range(4):  # the ranks split each epoch: the full set before T, the keep after
        shards = [trained_in(t, epoch) for t in trained]
        assert set(shards[0]) | set(shards[1]) == set(range(N) if epoch < 2 else keep.tolist())
        assert len(set(shards[0])) < (N if epoch < 2 else len(keep))
    assert_same_store(tmp_path / "dynamics", replay(tmp_path, 2, N, C, 2, signals=PRUNE_SIGNALS))


@pytest.mark.parametrize("epochs, args, match", [
    (4, {"gradient_accumulation_steps": 2}, "gradient_accumulation_steps=2"),
    (4, {"max_steps": 6}, "max_steps=6"),
    (2, {}, "num_train_epochs=2 with prune_at=2"),
])
def test_prune_at_trainer_refuses_what_it_cannot_prune(tmp_path, epochs, args, match):
    trainer = make_trainer(tmp_path, cls=PruneAtTrainer, epochs=epochs, args=args, **PRUNE)
    with pytest.raises(dp.DataPruneError, match=match):
        trainer.train()
    assert not (tmp_path / "dynamics").exists()


def test_prune_at_trainer_refuses_a_missing_checkpoint_and_a_bad_plan(tmp_path):
    with pytest.raises(dp.DataPruneError, match="no checkpoint in"):
        make_trainer(tmp_path, cls=PruneAtTrainer, epochs=4, **PRUNE).train(resume_from_checkpoint=True)
    with pytest.raises(dp.DataPruneError, match="window=3"):
        make_trainer(tmp_path, cls=PruneAtTrainer, epochs=4, **{**PRUNE, "method": "dyn-unc", "prune_at": 3},
                     method_params={"window": 3})


def test_prune_doc_example_runs(tmp_path, monkeypatch):
    code = doc_block("from dataprune.integrations.transformers import PruneAtTrainer")
    monkeypatch.chdir(tmp_path)
    scope = {"model": tiny_model(), "train_dataset": tiny_dataset(),
             "training_args": make_trainer(tmp_path / "unused", epochs=4).args}
    exec(compile(code, "integrations.md", "exec"), scope)
    assert dp.Dynamics.open(tmp_path / "runs/hf-once/dynamics").epochs == 2
    assert len(scope["trainer"].prune_keep) == N - round(0.3 * N)


def test_resume_from_end_of_epoch_checkpoint_continues_the_store(tmp_path):
    every_epoch = {"save_strategy": "epoch"}
    train(tmp_path / "full", args=every_epoch)
    part = tmp_path / "part"
    train(part, args=every_epoch)
    shutil.rmtree(part / "hf" / "checkpoint-6")  # as if killed after epoch 0 (3 steps each)
    train(part, resume=str(part / "hf" / "checkpoint-3"), args=every_epoch, force=True)
    got, ref = dp.Dynamics.open(part / "dynamics"), dp.Dynamics.open(tmp_path / "full" / "dynamics")
    assert got.epochs == 2 and got.prob[0].tobytes() == ref.prob[0].tobytes()
    assert not np.isnan(np.asarray(got.prob[1], float)).any()
    train(tmp_path / "steps", args={"save_strategy": "steps", "save_steps": 2})
    with pytest.raises(dp.DataPruneError, match="mid-epoch"):
        train(tmp_path / "steps", resume=str(tmp_path / "steps" / "hf" / "checkpoint-2"),
              args={"save_strategy": "steps", "save_steps": 2})


def test_prune_at_trainer_resumes_like_an_uninterrupted_run(tmp_path):
    every_epoch = {"save_strategy": "epoch"}  # steps: 3 per full epoch, 2 per pruned one
    full = prune_train(tmp_path, args=every_epoch)
    shutil.copytree(tmp_path / "dynamics", tmp_path / "full_store")
    for done, step in ((1, 3), (2, 6)):  # before T the recorder resumes; at T the keep is scored again
        resumed = prune_train(tmp_path, resume=str(tmp_path / "hf" / f"checkpoint-{step}"), args=every_epoch)
        assert resumed.prune_keep.tolist() == full.prune_keep.tolist()
        assert_same_store(tmp_path / "dynamics", tmp_path / "full_store")
        for epoch in range(done, 4):  # the same batches in the same order (seeded by epoch)
            assert trained_in(resumed.trained, epoch) == trained_in(full.trained, epoch)
    with pytest.raises(dp.DataPruneError, match="saved at step 8, after pruning at step 6"):
        prune_train(tmp_path, resume=str(tmp_path / "hf" / "checkpoint-8"), args=every_epoch)
