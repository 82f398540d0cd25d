"""The Recorder takes bf16/fp16 logits and computes its signals in float32: every signal
against a float64 textbook reference, and a bf16 hand case."""
import math

import numpy as np
import pytest
import torch

import dataprune as dp


def _reference(logits64: np.ndarray, y: np.ndarray) -> dict[str, np.ndarray]:
    """Each signal of each row in float64, by the textbook formulas, one row at a time."""
    out = {s: [] for s in ("prob", "correct", "margin", "el2n", "entropy")}
    for z, t in zip(logits64, y):
        p = np.exp(z - z.max()) / np.exp(z - z.max()).sum()
        out["prob"].append(p[t])
        out["correct"].append(1 if int(np.argmax(z)) == t else 0)
        out["margin"].append(z[t] - max(z[c] for c in range(len(z)) if c != t))
        out["el2n"].append(math.sqrt(sum((p[c] - (c == t)) ** 2 for c in range(len(z)))))
        out["entropy"].append(-sum(q * math.log(q) for q in p if q > 0))
    return {k: np.array(v) for k, v in out.items()}


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_low_precision_logits_match_a_float64_reference(tmp_path, dtype):
    gen = torch.Generator().manual_seed(3)
    n, c = 64, 7
    logits = (4 * torch.randn(n, c, generator=gen)).to(dtype)
    logits[5, :] = logits[5, 0]  # a tied row: the first maximum counts (as argmax)
    y = torch.randint(0, c, (n,), generator=gen)
    signals = ["prob", "correct", "margin", "el2n", "entropy"]
    rec = dp.Recorder(n, tmp_path / "s", c, signals=signals, epochs=1)
    for a in range(0, n, 16):
        rec.update(torch.arange(a, a + 16), logits[a:a + 16], y[a:a + 16])
    rec.end_epoch()
    dyn = dp.Dynamics.open(tmp_path / "s")
    ref = _reference(logits.double().numpy(), y.numpy())  # the same (rounded) inputs, in float64
    np.testing.assert_array_equal(dyn.correct[0], ref["correct"])
    for s in ("prob", "margin", "el2n", "entropy"):  # float16 storage: within its rounding
        np.testing.assert_allclose(dyn[s][0].astype(np.float64), ref[s], rtol=2**-10, atol=2**-14, err_msg=s)


def test_bf16_hand_case(tmp_path):
    """logits [2, 0, 0] (exact in bf16), label 0: p = e^2 / (e^2 + 2) = 0.78699, margin 2,
    correct; label 1: p = 1 / (e^2 + 2) = 0.10651, margin -2, wrong."""
    rec = dp.Recorder(2, tmp_path / "s", 3, signals=["prob", "correct", "margin"], epochs=1)
    rec.update(torch.tensor([0, 1]), torch.tensor([[2.0, 0, 0], [2.0, 0, 0]], dtype=torch.bfloat16),
               torch.tensor([0, 1]))
    rec.end_epoch()
    dyn = dp.Dynamics.open(tmp_path / "s")
    np.testing.assert_allclose(dyn.prob[0].astype(float), [0.78699, 0.10651], rtol=1e-3)
    assert dyn.correct[0].tolist() == [1, 0] and dyn.margin[0].tolist() == [2.0, -2.0]
