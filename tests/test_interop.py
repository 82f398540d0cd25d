"""Official-format interop (prob_{epoch}.txt, file_list.txt), image folders, models by name."""
import numpy as np
import pytest
import torch

import dataprune as dp
from dataprune import interop


def write_official(dirpath, prob):
    hist = dirpath / "pred_prob_history"
    hist.mkdir(parents=True)
    for e, row in enumerate(prob):
        np.savetxt(hist / f"prob_{e}.txt", row, fmt="%.18e")
    return dirpath


def test_import_official_roundtrip(tmp_path):
    rng = np.random.default_rng(0)
    prob = rng.random((12, 40))
    prob[3, 5] = 0.0          # sampler dropped sample 5 in epoch 3: "not observed"
    prob[:, 7] = 0.0          # never seen
    src = write_official(tmp_path / "official", prob)
    (tmp_path / "file_list.txt").write_text("".join(f"/c{i % 3}/img{i}.JPEG {i % 3}\n" for i in range(40)))
    dyn = interop.import_official(src, tmp_path / "store", file_list=tmp_path / "file_list.txt")
    assert dyn.epochs == 12 and dyn.num_classes == 3 and dyn.view == "clean"
    assert np.isnan(dyn.prob[3, 5]) and np.isnan(dyn.prob[:, 7]).all()
    np.testing.assert_allclose(np.nan_to_num(dyn.prob.astype(float)), prob, atol=5e-4)
    assert dyn.labels.tolist() == [i % 3 for i in range(40)]
    assert (tmp_path / "store" / "file_list.txt").read_text() == (tmp_path / "file_list.txt").read_text()
    u = dp.score("dyn-unc", dyn, window=10)
    assert np.isnan(u[7]) and np.isfinite(np.delete(u, 7)).all()
    # epochs numbered 0..11 but sorted numerically, not as strings (prob_10 after prob_9)
    assert [f.name for f in interop.official_prob_files(src)][9:] == ["prob_9.txt", "prob_10.txt", "prob_11.txt"]


def test_import_official_errors(tmp_path):
    src = write_official(tmp_path / "o", np.full((3, 4), 0.5))
    (src / "pred_prob_history" / "prob_1.txt").unlink()
    with pytest.raises(ValueError, match="lacks prob_1.txt"):
        interop.import_official(src, tmp_path / "s")
    with pytest.raises(ValueError, match="no prob_"):
        interop.import_official(tmp_path, tmp_path / "s2")
    bad = write_official(tmp_path / "b", np.full((2, 4), 0.5))
    np.savetxt(bad / "pred_prob_history" / "prob_1.txt", np.full(5, 0.5))
    with pytest.raises(ValueError, match="holds 5 values; expected 4"):
        interop.import_official(bad, tmp_path / "s3", num_classes=2)
    assert not (tmp_path / "s2").exists()


def test_file_list_roundtrip_and_subset(tmp_path):
    paths = ["a/x 1.png", "b/y.png", "a/z.png"]
    out = interop.write_file_list(tmp_path / "keep_list.txt", paths, [0, 1, 0], np.array([0, 2]))
    assert out.read_text() == "a/x 1.png 0\na/z.png 0\n"
    got_paths, got_labels = interop.read_file_list(out)
    assert got_paths == ["a/x 1.png", "a/z.png"] and got_labels.tolist() == [0, 0]
    with pytest.raises(ValueError, match="already exists"):
        interop.write_file_list(out, paths, [0, 1, 0])
    (tmp_path / "bad.txt").write_text("just-a-path\n")
    with pytest.raises(ValueError, match="line 1"):
        interop.read_file_list(tmp_path / "bad.txt")


def make_image_folder(root, classes=("cat", "dog"), per_class=(3, 2), size=(10, 8)):
    from PIL import Image
    rng = np.random.default_rng(0)
    for split, k in (("train", per_class[0]), ("val", per_class[1])):
        for c in classes:
            (root / split / c).mkdir(parents=True)
            for i in range(k):
                arr = rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)
                Image.fromarray(arr).save(root / split / c / f"img{i}.png")
    return root


def test_imagefolder_loads_in_imagefolder_order(tmp_path):
    from dataprune.train.data import load_dataset
    from dataprune.train.imagefolder import folder_samples
    root = make_image_folder(tmp_path / "imgs")
    paths, labels, classes = folder_samples(root)
    assert paths == [f"{c}/img{i}.png" for c in ("cat", "dog") for i in range(3)]
    assert labels.tolist() == [0, 0, 0, 1, 1, 1] and classes == ["cat", "dog"]
    data = load_dataset("imagefolder", root, image_size=8)  # listed, not decoded
    assert data.train_y.tolist() == [0, 0, 0, 1, 1, 1] and data.test_y.tolist() == [0, 0, 1, 1]
    assert data.eval_split == "val" and data.num_classes == 2 and data.image_size == 8
    assert data.file_list[0] == paths
    x, y, idx = next(iter(data.loader(batch_size=6, shuffle=False, augment=False)))
    assert x.shape == (6, 3, 8, 8) and x.dtype == torch.float32 and idx.tolist() == list(range(6))
    with pytest.raises(ValueError, match="needs --data-dir"):
        load_dataset("imagefolder")
    with pytest.raises(ValueError, match="no train/ folder"):
        (tmp_path / "only").mkdir()
        load_dataset("imagefolder", tmp_path / "only")


def test_missing_torchvision_names_the_extra(monkeypatch):
    import builtins
    from dataprune.train.imagefolder import require
    real = builtins.__import__

    def fake(name, *a, **k):
        if name.startswith("torchvision"):
            raise ImportError(name)
        return real(name, *a, **k)
    monkeypatch.setattr(builtins, "__import__", fake)
    import importlib
    monkeypatch.setattr(importlib, "import_module", lambda n: fake(n))
    with pytest.raises(ValueError, match=r"dataprune\[vision\]"):
        require("torchvision.datasets", "dataset 'imagefolder'")


@pytest.mark.parametrize("name", ["timm:resnet10t", "torchvision:resnet18"])
def test_models_by_name(name):
    from dataprune.train.models import build_model
    torch.manual_seed(0)
    net = build_model(name, 5, 3, 32).eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        h = net.features(x)
        assert h.shape == (2, net.feature_dim)
        torch.testing.assert_close(net(x), net.head(h))
        assert net(x).shape == (2, 5)


def test_model_name_errors():
    from dataprune.train.models import build_model
    with pytest.raises(ValueError, match="timm has no model"):
        build_model("timm:no-such-net", 5)
    with pytest.raises(ValueError, match="timm:NAME / torchvision:NAME"):
        build_model("resnet-unknown", 5)
