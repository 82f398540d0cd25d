"""Where the project uses the ecosystem instead of hand-written code: scikit-learn's average
precision for the OOD AUPR, the ``logging`` module (library code never prints), and torch's
LR schedulers."""
import ast
import builtins
import logging
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from dataprune.bench.ood import average_precision, load_ood, msp_aupr
from dataprune.errors import DataPruneError
from dataprune.logs import get_logger


def handwritten_average_precision(pos, scores):
    """The vectorised version bench/ood.py had before it called scikit-learn (kept as a reference)."""
    order = np.argsort(-scores, kind="stable")
    s, y = scores[order], pos[order]
    last = np.r_[np.flatnonzero(np.diff(s)), len(s) - 1]
    tp = np.cumsum(y)[last]
    precision, recall = tp / (last + 1), tp / tp[-1]
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


@pytest.mark.parametrize("seed", range(20))
def test_aupr_equals_the_handwritten_version(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(2, 2000))
    pos = rng.random(n) < rng.uniform(0.02, 0.9)
    pos[rng.integers(n)] = True
    scores = (rng.integers(0, 12, n).astype(float) if seed % 2 else  # ties on odd seeds
              np.float32(rng.random(n)).astype(np.float64))           # float32 MSPs, as in bench
    assert average_precision(pos, scores) == pytest.approx(handwritten_average_precision(pos, scores),
                                                           rel=0, abs=1e-12)


def test_msp_aupr_hand_cases_unchanged():
    # P = 1, 1/2, 2/3 at R = 1/2, 1/2, 1 -> 5/6; a positive tied with a negative -> 1/2
    assert average_precision(np.array([1, 0, 1], bool), np.array([0.9, 0.8, 0.7])) == pytest.approx(5 / 6)
    assert average_precision(np.array([1, 0], bool), np.array([0.5, 0.5])) == pytest.approx(0.5)
    # OOD (positive) as confident as in-distribution at 0.5: P = 1, 1, 2/3 at R = 1/2, 1/2, 1
    assert msp_aupr(np.array([0.9, 0.5]), np.array([0.1, 0.5])) == pytest.approx(0.5 + 0.5 * 2 / 3)


def test_aupr_without_sklearn_is_one_clear_error(monkeypatch):
    real_import = builtins.__import__

    def no_sklearn(name, *args, **kwargs):
        if name.startswith("sklearn"):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_sklearn)
    with pytest.raises(DataPruneError, match=r"needs scikit-learn: pip install 'dataprune\[bench\]'"):
        average_precision(np.array([1, 0], bool), np.array([0.2, 0.1]))
    with pytest.raises(DataPruneError, match="needs scikit-learn"):  # before any training
        load_ood("idx:/nonexistent")


SRC = Path(__file__).resolve().parents[1] / "src" / "dataprune"


def printing_calls(tree: ast.AST) -> list[int]:
    """Line numbers of print(...) and sys.stdout/sys.stderr.write(...) calls."""
    lines = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        f = node.func
        if isinstance(f, ast.Name) and f.id == "print":
            lines.append(node.lineno)
        elif (isinstance(f, ast.Attribute) and f.attr == "write" and isinstance(f.value, ast.Attribute)
              and f.value.attr in ("stdout", "stderr")):
            lines.append(node.lineno)
    return lines


def test_printing_calls_finds_them():
    assert printing_calls(ast.parse("print(1)\nimport sys\nsys.stderr.write('x')\nf.write(2)")) == [1, 3]


def test_library_code_never_prints():
    """Only the CLI prints (results on stdout, its one-line errors on stderr); the library logs."""
    found = []
    for path in sorted(SRC.rglob("*.py")):
        if "cli" in path.relative_to(SRC).parts:
            continue
        found += [f"{path.relative_to(SRC)}:{n}" for n in printing_calls(ast.parse(path.read_text()))]
    assert found == []


def our_handlers():
    return [h for h in logging.getLogger("dataprune").handlers if type(h).__module__ == "dataprune.logs"]


@pytest.mark.parametrize("flags, level", [([], logging.INFO), (["-v"], logging.DEBUG),
                                          (["-vv"], logging.DEBUG)])
def test_cli_configures_the_dataprune_logger(flags, level, capsys):
    from dataprune.cli import main
    assert main(["methods", *flags]) == 0
    assert main(["methods", *flags]) == 0  # a second call replaces the handler, never adds one
    assert logging.getLogger("dataprune").level == level and len(our_handlers()) == 1
    capsys.readouterr()
    get_logger("bench").info("progress line")
    get_logger("bench").debug("debug line")
    err = capsys.readouterr().err
    assert "progress line" in err and ("debug line" in err) == (level == logging.DEBUG)


def test_cli_quiet_keeps_warnings_only(tiny_idx_dir, tmp_path, capsys):
    from dataprune.cli import main
    assert main(["train", "--dataset", "idx", "--data-dir", str(tiny_idx_dir), "--limit", "40",
                 "--epochs", "1", "--model", "mlp", "--quiet"]) == 0
    assert logging.getLogger("dataprune").level == logging.WARNING
    captured = capsys.readouterr()
    assert "epoch 1" not in captured.err and "test accuracy" in captured.out
    get_logger("bench").warning("warning: something")
    assert capsys.readouterr().err == "warning: something\n"
    assert main(["train", "--dataset", "idx", "--data-dir", str(tiny_idx_dir), "--limit", "40",
                 "--epochs", "1", "--model", "mlp"]) == 0
    assert "train epoch 1/1: 40 samples, loss" in capsys.readouterr().err  # progress through the logger


def test_scores_debug_lines_with_v(tmp_path, capsys):
    from dataprune.cli import main
    from helpers_methods import write_store
    rng = np.random.default_rng(0)
    store = write_store(tmp_path / "s", {"margin": rng.normal(size=(3, 8))}, np.arange(8) % 2, 2)
    assert main(["scores", str(store.path), "--methods", "aum", "--out", str(tmp_path / "a.csv"), "-v"]) == 0
    assert "scored 8 samples with aum" in capsys.readouterr().err


def closed_form_factor(step, total, warmup):
    """The warm-up + cosine schedule, written out per step (slow reference of train/schedule.py;
    ``warmup`` in steps, may be fractional)."""
    if step < warmup:
        return (step + 1) / (warmup + 1)
    return 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, total - warmup)))


def lr_trace(cfg, steps_per_epoch, resume_at=None):
    from dataprune.train.loop import make_optimizer
    net = torch.nn.Linear(3, 2)
    opt, sched = make_optimizer(net, cfg, steps_per_epoch)
    out = []
    for step in range(cfg.epochs * steps_per_epoch):
        if step == resume_at:  # a resumed run rebuilds both and loads their states
            states = opt.state_dict(), sched.state_dict()
            opt, sched = make_optimizer(net, cfg, steps_per_epoch)
            opt.load_state_dict(states[0])
            sched.load_state_dict(states[1])
        out.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return out


def test_lr_schedule_hand_case():
    from dataprune.train.loop import TrainConfig
    # 2 epochs x 2 steps, 1 warm-up epoch: W = 2, T = 4 -> factors 1/3, 2/3, 1, 1/2
    assert lr_trace(TrainConfig(epochs=2, lr=0.3), 2) == pytest.approx([0.1, 0.2, 0.3, 0.15], abs=1e-15)


@pytest.mark.parametrize("epochs, steps, warmup", [(15, 40, 1.0), (3, 1, 1.0), (1, 1, 1.0), (4, 9, 0.0),
                                                   (2, 7, 0.5), (1, 10, 1.0)])
def test_lr_schedule_matches_closed_form_and_resumes(epochs, steps, warmup):
    from dataprune.train.loop import TrainConfig
    cfg = TrainConfig(epochs=epochs, warmup_epochs=warmup, lr=0.1)
    total = epochs * steps
    w = min(warmup, epochs) * steps  # the one schedule: warm-up as a share of the run, in steps
    got = lr_trace(cfg, steps)
    want = [0.1 * closed_form_factor(s, total, w) for s in range(total)]
    assert got == pytest.approx(want, rel=1e-12, abs=1e-18)  # epochs vs steps as the unit: rounding only
    assert lr_trace(cfg, steps, resume_at=total // 2) == got
