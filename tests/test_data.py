"""IDX reading, dataset loading, the in-memory loader and evaluation."""
from __future__ import annotations

import gzip

import numpy as np
import pytest
import torch
from conftest import write_idx

from dataprune.errors import DataPruneError
from dataprune.train.data import (DATASETS, InMemoryLoader, evaluate, find_idx, load_dataset,
                                  normalize, read_idx)
from dataprune.train.models import build_model


@pytest.mark.parametrize("name", ["a-idx3-ubyte", "a-idx3-ubyte.gz"])
@pytest.mark.parametrize("shape", [(5,), (4, 3, 2)])
def test_read_idx_round_trip(tmp_path, name, shape):
    array = np.arange(np.prod(shape), dtype=np.uint8).reshape(shape)
    out = read_idx(write_idx(tmp_path / name, array))
    assert out.dtype == np.uint8 and out.shape == shape
    np.testing.assert_array_equal(out, array)


def test_read_idx_truncated(tmp_path):
    path = write_idx(tmp_path / "x-idx3-ubyte", np.zeros((4, 5, 5), np.uint8))
    path.write_bytes(path.read_bytes()[:-7])
    with pytest.raises(DataPruneError, match=r"x-idx3-ubyte is truncated or corrupt.*dims \(4, 5, 5\)"):
        read_idx(path)


def test_read_idx_truncated_gzip(tmp_path):
    path = write_idx(tmp_path / "x-idx1-ubyte.gz", np.zeros(1000, np.uint8))
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(DataPruneError, match="x-idx1-ubyte.gz is not a readable IDX file"):
        read_idx(path)


def test_read_idx_bad_magic_and_dtype(tmp_path):
    path = tmp_path / "junk"
    path.write_bytes(b"hello world")
    with pytest.raises(DataPruneError, match="bad magic number"):
        read_idx(path)
    path.write_bytes(gzip.compress(bytes([0, 0, 0x0D, 1, 0, 0, 0, 1]) + b"\0" * 4))
    with pytest.raises(DataPruneError, match="dtype code 0x0d"):
        read_idx(path)


def test_read_idx_missing(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope"):
        read_idx(tmp_path / "nope")


@pytest.mark.parametrize("name", ["train-images-idx3-ubyte", "train-images-idx3-ubyte.gz",
                                  "train-images.idx3-ubyte", "train-images.idx3-ubyte.gz"])
def test_find_idx_spellings(tmp_path, name):
    write_idx(tmp_path / name, np.zeros((1, 2, 2), np.uint8))
    assert find_idx(tmp_path, "train", "images") == tmp_path / name


def test_find_idx_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match=f"t10k labels IDX file in {tmp_path}.*t10k-labels-idx1-ubyte"):
        find_idx(tmp_path, "t10k", "labels")
    with pytest.raises(ValueError, match="split 'test'"):
        find_idx(tmp_path, "test", "labels")
    with pytest.raises(ValueError, match="kind 'pixels'"):
        find_idx(tmp_path, "train", "pixels")


def test_missing_files_message(tmp_path):
    with pytest.raises(FileNotFoundError, match="apt-get install dataset-fashion-mnist") as info:
        load_dataset("fashion-mnist", data_dir=tmp_path)
    assert str(tmp_path) in str(info.value) and "\n" not in str(info.value)
    with pytest.raises(FileNotFoundError, match="put the four IDX files"):
        load_dataset("idx", data_dir=tmp_path / "absent")


def test_dataset_names():
    assert set(DATASETS) == {"fashion-mnist", "mnist"}
    with pytest.raises(ValueError, match=r"unknown dataset 'cifar'.*'fashion-mnist', 'idx', 'imagefolder', 'mnist'"):
        load_dataset("cifar")
    with pytest.raises(ValueError, match="'mnist' has no default directory; pass --data-dir"):
        load_dataset("mnist")


def test_load_dataset(tiny_idx_dir):
    data = load_dataset("idx", data_dir=tiny_idx_dir)
    assert data.train_x.shape == (300, 1, 28, 28) and data.train_x.dtype == torch.uint8
    assert data.train_y.shape == (300,) and data.train_y.dtype == torch.int64
    assert data.test_x.shape == (100, 1, 28, 28) and data.test_y.shape == (100,)
    assert data.num_classes == 10 and data.name == "idx" and data.data_dir == tiny_idx_dir
    pixels = data.train_x.double() / 255
    assert data.mean == pytest.approx(pixels.mean().item()) and data.std == pytest.approx(pixels.std().item(), rel=1e-3)


def test_load_dataset_limit(tiny_idx_dir):
    full, data = load_dataset("idx", tiny_idx_dir), load_dataset("idx", tiny_idx_dir, limit=7)
    assert torch.equal(data.train_x, full.train_x[:7]) and torch.equal(data.train_y, full.train_y[:7])
    assert len(data.test_x) == 100 and data.num_classes == 10
    for bad in (0, 301):
        with pytest.raises(ValueError, match=f"limit {bad} is out of range.*<= 300"):
            load_dataset("idx", tiny_idx_dir, limit=bad)


def test_load_dataset_count_mismatch_and_empty(tiny_idx_dir):
    write_idx(tiny_idx_dir / "t10k-labels-idx1-ubyte", np.zeros(99, np.uint8))
    with pytest.raises(ValueError, match="holds 100 images but .* holds 99 labels"):
        load_dataset("idx", tiny_idx_dir)
    write_idx(tiny_idx_dir / "t10k-images-idx3-ubyte", np.zeros((0, 28, 28), np.uint8))
    write_idx(tiny_idx_dir / "t10k-labels-idx1-ubyte", np.zeros(0, np.uint8))
    with pytest.raises(ValueError, match="holds no samples"):
        load_dataset("idx", tiny_idx_dir)


def make_loader(n=50, **kw):
    x = torch.randint(0, 256, (n, 1, 8, 8), dtype=torch.uint8)
    return InMemoryLoader(x, torch.arange(n) % 3, mean=0.5, std=0.25, **{"batch_size": 16, **kw})


def epoch_indices(loader, epoch):
    loader.set_epoch(epoch)
    return torch.cat([idx for _, _, idx in loader])


def test_loader_each_index_once_shuffled_deterministic():
    loader = make_loader(shuffle=True, seed=3)
    first = epoch_indices(loader, 0)
    assert sorted(first.tolist()) == list(range(50)) and first.tolist() != list(range(50))
    assert torch.equal(first, epoch_indices(loader, 0))
    assert not torch.equal(first, epoch_indices(loader, 1))
    assert torch.equal(first, epoch_indices(make_loader(shuffle=True, seed=3), 0))
    assert not torch.equal(first, epoch_indices(make_loader(shuffle=True, seed=4), 0))
    assert epoch_indices(make_loader(shuffle=False), 0).tolist() == list(range(50))


def test_loader_subset_batches_and_labels():
    keep = np.array([4, 9, 17, 30, 31, 49])
    loader = make_loader(indices=keep, batch_size=4)
    assert len(loader) == 2
    batches = list(loader)
    assert [len(b[2]) for b in batches] == [4, 2]
    idx = torch.cat([b[2] for b in batches])
    assert idx.dtype == torch.int64 and sorted(idx.tolist()) == keep.tolist()
    for x, y, i in batches:
        assert x.dtype == torch.float32 and x.shape == (len(i), 1, 8, 8)
        assert torch.equal(y, loader.y[i]) and torch.equal(x, loader.clean(i))
    assert len(make_loader(indices=keep, batch_size=4, drop_last=True)) == 1
    assert len(list(make_loader(indices=keep, batch_size=4, drop_last=True))) == 1


def test_loader_bad_arguments():
    with pytest.raises(ValueError, match=r"indices span \[0, 50\]"):
        make_loader(indices=np.array([0, 50]))
    with pytest.raises(ValueError, match="1 duplicates"):
        make_loader(indices=np.array([1, 1]))
    with pytest.raises(ValueError, match="batch_size 0"):
        make_loader(batch_size=0)
    with pytest.raises(ValueError, match="expected uint8"):
        InMemoryLoader(torch.zeros(4, 1, 8, 8), torch.zeros(4), mean=0.0, std=1.0)


def test_clean_equals_normalize():
    loader = make_loader(augment=True)
    idx = torch.tensor([3, 0, 7])
    expected = (loader.x[idx].float() / 255 - 0.5) / 0.25
    torch.testing.assert_close(loader.clean(idx), expected)
    torch.testing.assert_close(normalize(loader.x[idx], 0.5, 0.25), expected)


def test_augmentation_only_shifts():
    x = torch.zeros(64, 1, 12, 12, dtype=torch.uint8)
    x[:, :, 4:8, 4:8] = torch.arange(1, 17, dtype=torch.uint8).reshape(4, 4)   # centred 4x4 patch
    loader = InMemoryLoader(x, torch.zeros(64), mean=0.0, std=1.0, batch_size=64, augment=True, seed=0)
    out, _, idx = next(iter(loader))
    raw = (out * 255).round().to(torch.uint8)
    patch = x[0, 0, 4:8, 4:8]
    shifts = set()
    for img in raw[:, 0]:
        assert img.sum() == patch.sum()                       # centred content is never cropped away
        rows, cols = img.nonzero(as_tuple=True)
        r, c = rows.min().item(), cols.min().item()
        assert torch.equal(img[r:r + 4, c:c + 4], patch)       # pure translation
        assert abs(r - 4) <= 2 and abs(c - 4) <= 2
        shifts.add((r, c))
    assert len(shifts) > 5
    loader.set_epoch(0)
    assert torch.equal(out, next(iter(loader))[0])            # deterministic per (seed, epoch)
    assert not torch.equal(loader.clean(idx), out)


def test_evaluate_restores_mode(tiny_idx_dir):
    data = load_dataset("idx", tiny_idx_dir)
    model = build_model("small-cnn", data.num_classes)
    model.train()
    acc = evaluate(model, data.test_x, data.test_y, data.mean, data.std, batch_size=32)
    assert 0.0 <= acc <= 1.0 and model.training
    model.eval()
    evaluate(model, data.test_x, data.test_y, data.mean, data.std)
    assert not model.training


def test_tiny_dataset_is_learnable(tiny_idx_dir):
    torch.manual_seed(0)
    data = load_dataset("idx", tiny_idx_dir)
    model = build_model("mlp", data.num_classes)
    loader = InMemoryLoader(data.train_x, data.train_y, mean=data.mean, std=data.std, batch_size=32,
                            augment=True)
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    for epoch in range(5):
        loader.set_epoch(epoch)
        for x, y, _ in loader:
            opt.zero_grad()
            torch.nn.functional.cross_entropy(model(x), y).backward()
            opt.step()
    assert evaluate(model, data.test_x, data.test_y, data.mean, data.std) > 0.8
