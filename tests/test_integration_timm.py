"""docs/integrations.md's timm recipe runs as written: record from a loop over timm's
ImageDataset with a timm resnet10t at 32 px, `dataprune select --file-list`, then timm's
ImageDataset over the linked kept samples gives each image the label dataprune recorded."""
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("timm")
import dataprune as dp  # noqa: E402
from dataprune.cli import main  # noqa: E402
from dataprune.interop import read_file_list  # noqa: E402
from helpers_docs import doc_block  # noqa: E402

pytestmark = pytest.mark.timeout(300)


def make_folder(root: Path) -> None:
    """data/train with classes c1, c2, c10 (natural order differs from sorted order), RGB PNGs."""
    from PIL import Image
    rng = np.random.default_rng(0)
    for k, name in enumerate(["c1", "c10", "c2"]):
        (root / name).mkdir(parents=True)
        for i in range(6):
            img = rng.integers(0, 80, (32, 32, 3)).astype(np.uint8)
            img[..., k] += 150
            Image.fromarray(img).save(root / name / f"img{i}.png")


def test_timm_recipe_records_selects_and_trains_from_the_kept_list(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    make_folder(tmp_path / "data" / "train")
    scope: dict = {}
    import torch
    torch.manual_seed(0)
    exec(compile(doc_block("# timm: record dynamics"), "integrations.md", "exec"), scope)
    dyn = dp.Dynamics.open("run/dynamics")
    assert dyn.epochs == 3 and dyn.num_samples == 18 and not np.isnan(np.asarray(dyn.prob, float)).any()
    assert main(["select", "run/dynamics", "--prune-ratio", "0.5", "--window", "2",
                 "--out", "keep.txt", "--file-list"]) in (0, None)
    kept_paths, kept_labels = read_file_list("keep.file_list.txt")
    assert len(kept_paths) == 9
    exec(compile(doc_block("# timm: train from the kept samples"), "integrations.md", "exec"), scope)
    pruned = scope["pruned"]
    assert len(pruned) == 9
    got = {p: t for p, t in zip(pruned.reader.filenames(), (t for _, t in pruned.reader.samples))}
    assert got == dict(zip(kept_paths, kept_labels.tolist()))
    # the labels are the store's, i.e. timm's order of the full folder: c1=0, c2=1, c10=2
    assert {p.split("/")[0]: t for p, t in got.items()}.items() <= {"c1": 0, "c2": 1, "c10": 2}.items()
    # a timm model trains one step on the pruned set (timm's own transforms)
    from timm.data import create_transform
    pruned.transform = create_transform(32, is_training=True)
    x, y = next(iter(torch.utils.data.DataLoader(pruned, batch_size=4)))
    loss = torch.nn.functional.cross_entropy(scope["model"](x), y)
    loss.backward()
    assert torch.isfinite(loss)
