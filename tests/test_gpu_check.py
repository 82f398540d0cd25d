"""The GPU check's CPU-runnable parts: benchmarks/recorder_gpu_overhead.py on a tiny CPU
setting, and benchmarks/gpu_check.sh's syntax, --dry-run and report (with a fake nvidia-smi)."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "gpu_check.sh"
MS = r"(\d+\.\d+)"


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=pytest.mark.cuda)])
def test_recorder_gpu_overhead_runs_tiny_and_reports_both_ratios(device):
    """A tiny setting (seconds on CPU) that misses its target (exit 3): the output's format."""
    cmd = [sys.executable, str(ROOT / "benchmarks" / "recorder_gpu_overhead.py"), "--device", device,
           "--arch", "resnet18", "--image-size", "32", "--batch-size", "4", "--steps", "2", "--warmup", "1",
           "--repeats", "2", "--num-samples", "100", "--num-classes", "10", "--target", "0"]
    # one thread: spinning OpenMP threads make it 3x slower on a busy 2-core machine
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "OMP_NUM_THREADS": "1"}
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 3, out.stderr  # measured, and a ratio is never <= 0: target missed
    lines = out.stdout.splitlines()
    assert lines[0].startswith("recorder overhead: torchvision resnet18, 32 px, bf16, channels_last, SGD, "
                               "batch 4, N=100, C=10, signals prob,correct, on "), lines[0]
    repeats = [re.fullmatch(rf"repeat {r}: without {MS} ms/step, with {MS} ms/step, end_epoch {MS} ms", line)
               for r, line in enumerate(lines[1:3])]
    assert all(repeats), lines[1:3]
    without = sorted(float(m[1]) for m in repeats)
    assert re.fullmatch(rf"step without recorder: {MS} ms \(median of 2 blocks of 2 steps\)", lines[3])
    assert float(lines[3].split()[3]) == pytest.approx(sum(without) / 2, abs=2e-3)  # median of two
    assert re.fullmatch(rf"update alone: {MS} ms/call; end_epoch: {MS} ms = {MS} ms/step over 25 steps/epoch",
                        lines[5]), lines[5]
    last = re.fullmatch(rf"ratio {MS} direct {MS} target 0 FAIL", lines[6])
    assert last and float(last[1]) > 0 and float(last[2]) > 1, lines[6]


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the skip without CUDA")
def test_cuda_marked_tests_are_skipped_without_cuda():
    out = subprocess.run([sys.executable, "-m", "pytest", "-m", "cuda", "-q", "-rs", "-p", "no:cacheprovider",
                          str(Path(__file__))], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert out.returncode == 0 and "SKIPPED [1]" in out.stdout and "needs a CUDA device" in out.stdout, out.stdout
    assert re.search(r"\b1 skipped, \d+ deselected\b", out.stdout), out.stdout


def test_gpu_check_script_parses_and_refuses_unknown_arguments():
    subprocess.run(["bash", "-n", str(SCRIPT)], check=True)
    out = subprocess.run(["bash", str(SCRIPT), "--fast"], capture_output=True, text=True)
    assert out.returncode == 2 and out.stderr.strip() == (
        "gpu_check.sh: unknown argument '--fast'; expected --dry-run or nothing")


def fake_machine(tmp_path: Path, gpus: int) -> tuple[Path, dict[str, str]]:
    """A copy of the script in tmp_path/benchmarks, .venv -> this venv, and PATH with a fake
    nvidia-smi listing ``gpus`` GPUs and a `make` that does nothing."""
    (tmp_path / "benchmarks").mkdir()
    shutil.copy(SCRIPT, tmp_path / "benchmarks")
    (tmp_path / ".venv").symlink_to(Path(sys.prefix))
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    listing = "".join(f"GPU {i}: Fake GPU (UUID: GPU-{i})\\n" for i in range(gpus))
    for name, body in (("nvidia-smi", f'[ "$1" = -L ] && printf "{listing}" || echo "fake nvidia-smi table"'),
                       ("make", "echo fake make $*; echo 'made | ok'")):
        (bin_dir / name).write_text(f"#!/bin/sh\n{body}\n")
        (bin_dir / name).chmod(0o755)
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}
    return tmp_path / "benchmarks" / "gpu_check.sh", env


def test_gpu_check_dry_run_prints_every_step_with_all_gpus(tmp_path):
    script, env = fake_machine(tmp_path, gpus=3)
    out = subprocess.run(["bash", str(script), "--dry-run"], capture_output=True, text=True, env=env)
    assert out.returncode == 0, out.stderr
    cmds = out.stdout.splitlines()
    assert cmds[0] == "make setup" and "assert n == 3" in cmds[1]
    assert cmds[2] == ".venv/bin/python -m pytest -m cuda -q -rs -p no:cacheprovider"
    assert re.fullmatch(r"\.venv/bin/python -m dataprune record --nproc 3 --device cuda --precision bf16 "
                        r"--dataset fashion-mnist --model small-cnn --epochs 2 --out (\S+) --force", cmds[3])
    assert cmds[4] == f".venv/bin/python -m dataprune check {cmds[3].split('--out ')[1].split()[0]}"
    assert cmds[5:] == [".venv/bin/python benchmarks/recorder_gpu_overhead.py"]
    assert not (tmp_path / "benchmarks" / "results").exists()  # a dry run writes nothing


def test_gpu_check_stops_at_a_failed_step_and_still_writes_the_report(tmp_path):
    # nvidia-smi lists 99 GPUs, torch sees fewer: the check stops after that step, exit 1
    script, env = fake_machine(tmp_path, gpus=99)
    out = subprocess.run(["bash", str(script)], capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 1, out.stdout + out.stderr
    report = (tmp_path / "benchmarks" / "results" / "gpu_check.md").read_text()
    assert "**a step FAILED**" in report and "fake nvidia-smi table" in report
    rows = [line for line in report.splitlines() if line.startswith("| ") and "---" not in line]
    assert rows[0] == "| step | result | seconds | last line of output |"
    assert [re.sub(r"\d+", "#", r) for r in rows[1:]] == [  # (torch sees 0 GPUs here, more on a GPU machine)
        r"| make setup | pass | # | made \| ok |",
        "| torch sees the GPUs | FAIL (exit #) | # | AssertionError: torch sees # GPUs, nvidia-smi lists # "
        "(CUDA_VISIBLE_DEVICES?) |"]
    assert "fake make setup" in report and "AssertionError" in report and "'torch': '" in report
    assert "pytest" not in report  # nothing after the failed step ran


def test_gpu_check_without_gpus_says_so(tmp_path):
    script, env = fake_machine(tmp_path, gpus=0)
    out = subprocess.run(["bash", str(script)], capture_output=True, text=True, env=env)
    assert out.returncode == 1
    assert out.stderr.strip() == "gpu_check.sh: nvidia-smi lists no GPU; this check needs NVIDIA GPUs"
