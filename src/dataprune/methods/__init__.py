"""Scoring methods: one module per method, all registered by name.

Every method returns one float per sample with **higher = more worth keeping**.
"""
from __future__ import annotations

from ._registry import Method, get, methods, register, score
from .dyn_unc import dyn_unc
from . import random as _random  # noqa: F401  (registers "random")

__all__ = ["Method", "dyn_unc", "get", "methods", "register", "score"]
