"""dataprune.integrations.transformers with a real Hugging Face Trainer on a tiny BERT built
from a config (nothing downloaded): 2 epochs, N samples, the index column survives
remove_unused_columns, and the store equals a plain Recorder fed the same batches."""
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

transformers = pytest.importorskip("transformers")
import dataprune as dp  # noqa: E402
from dataprune.integrations.transformers import (INDEX_KEY, RecordDynamicsTrainer,  # noqa: E402
                                                 with_index)
from helpers_docs import doc_block  # noqa: E402

N, C, L = 10, 3, 8


def tiny_model() -> torch.nn.Module:
    torch.manual_seed(0)
    cfg = transformers.BertConfig(vocab_size=32, hidden_size=16, num_hidden_layers=1,
                                  num_attention_heads=2, intermediate_size=32, num_labels=C,
                                  max_position_embeddings=L)
    return transformers.BertForSequenceClassification(cfg)


def tiny_dataset() -> list[dict]:
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(1, 32, (N, L), generator=g)
    # "text" is not a forward argument: remove_unused_columns drops it, not the index
    return [{"input_ids": ids[i], "attention_mask": torch.ones(L, dtype=torch.long),
             "labels": i % C, "text": f"sample {i}"} for i in range(N)]


def make_trainer(tmp_path, **kwargs) -> RecordDynamicsTrainer:
    args = transformers.TrainingArguments(
        output_dir=str(tmp_path / "hf"), num_train_epochs=2, per_device_train_batch_size=4,
        learning_rate=1e-3, report_to=[], save_strategy="no", logging_strategy="no",
        use_cpu=True, disable_tqdm=True, seed=0)
    return RecordDynamicsTrainer(model=tiny_model(), args=args, train_dataset=with_index(tiny_dataset()),
                                 dynamics_out=tmp_path / "dynamics", **kwargs)


def test_trainer_records_two_epochs_like_a_recorder(tmp_path, monkeypatch):
    seen = []
    update = dp.Recorder.update

    def spy(self, indices, logits, targets, **kw):
        seen.append((self.epoch, indices.clone(), logits.detach().clone(), targets.clone()))
        return update(self, indices, logits, targets, **kw)

    monkeypatch.setattr(dp.Recorder, "update", spy)
    make_trainer(tmp_path, signals=["prob", "correct", "el2n"]).train()
    dyn = dp.Dynamics.open(tmp_path / "dynamics")
    assert dyn.epochs == 2 and dyn.prob.shape == (2, N) and dyn.num_classes == C
    assert not np.isnan(np.asarray(dyn.prob, float)).any()
    assert dyn.labels.tolist() == [i % C for i in range(N)]
    monkeypatch.setattr(dp.Recorder, "update", update)
    ref = dp.Recorder(N, tmp_path / "ref", C, signals=["prob", "correct", "el2n"], epochs=2)
    for epoch in range(2):
        for e, idx, logits, y in seen:
            if e == epoch:
                ref.update(idx, logits, y)
        ref.end_epoch()
    for f in ("prob.npy", "correct.npy", "el2n.npy", "labels.npy"):
        assert np.load(tmp_path / "dynamics" / f).tobytes() == np.load(tmp_path / "ref" / f).tobytes()


def test_missing_index_column_refused(tmp_path):
    trainer = make_trainer(tmp_path)
    trainer.train_dataset = tiny_dataset()
    with pytest.raises(dp.DataPruneError, match=INDEX_KEY):
        trainer.train()


def test_resume_refused_and_store_not_overwritten(tmp_path):
    make_trainer(tmp_path).train()
    with pytest.raises(dp.DataPruneError, match="resum"):
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
    code = doc_block("from dataprune.integrations.transformers")
    monkeypatch.chdir(tmp_path)
    scope = {"model": tiny_model(), "train_dataset": tiny_dataset(),
             "training_args": make_trainer(tmp_path / "unused").args}
    exec(compile(code, "integrations.md", "exec"), scope)
    dyn = dp.Dynamics.open(tmp_path / "runs/x/dynamics")
    assert dyn.epochs == 2 and dyn.num_samples == N
