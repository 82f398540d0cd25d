"""Selection semantics found by the trust review (issue 10, items 1 and 11-15)."""
import os

import numpy as np
import pytest
from hypothesis import settings

import dataprune as dp


# ------------------------------------------------------------------ 1: chunk invariance, CI
def test_dyn_unc_fast_path_chunk_invariant_float64():
    """The reported failure: float64, no NaN, 10 windows; a 1-column chunk summed its windows
    pairwise (r.sum(0)), a wide chunk row by row, and the two differed by ~1e-16."""
    prob = np.random.default_rng(0).random((12, 30))
    wide = dp.dyn_unc(prob, 2)
    for chunk in (1, 2, 7, 30):
        np.testing.assert_array_equal(dp.dyn_unc(prob, 2, chunk_size=chunk), wide)


def test_dyn_unc_fast_path_chunk_invariant_float16():
    prob = np.random.default_rng(1).random((40, 50)).astype(np.float16)
    np.testing.assert_array_equal(dp.dyn_unc(prob, 10, chunk_size=1), dp.dyn_unc(prob, 10))


@pytest.mark.skipif(os.environ.get("HYPOTHESIS_PROFILE", "ci") != "ci", reason="explore profile")
def test_hypothesis_is_derandomized_by_default():
    assert settings.default.derandomize and settings.default.database is None
    assert settings.default.print_blob
