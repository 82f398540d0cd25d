"""dataprune.integrations.lightning.RecordDynamics with a real Lightning Trainer: the store
equals a plain Recorder fed the same batches, single-process and under DDP (gloo, 2 CPU
processes); resume from an end-of-epoch checkpoint continues the store; mid-epoch refused."""
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("lightning")
import dataprune as dp  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent))
import _lightning_app as app  # noqa: E402
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
    env = {**os.environ, "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join([str(Path(__file__).parents[1] / "src"),
                                          os.environ.get("PYTHONPATH", "")])}
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
