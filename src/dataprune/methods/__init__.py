"""Scoring methods: one module per method, all registered by name.

Every method returns one float per sample with **higher = more worth keeping**.
"""
from __future__ import annotations

from ._registry import Method, get, methods, register, score, score_runs
from .dual import dual  # registers "dual"
from .dyn_unc import dyn_unc
from . import random as _random  # noqa: F401  (registers "random")
# each import registers one method
from . import aum, cartography, el2n, entropy, forgetting, grand, moderate, ssp, tdds  # noqa: F401

__all__ = ["Method", "dual", "dyn_unc", "get", "methods", "register", "score", "score_runs"]
