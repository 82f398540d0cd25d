"""Scoring methods: one module per method, all registered by name.

Every method returns one float per sample with **higher = more worth keeping**.
:func:`list_methods` names them, :func:`get_method` gives one's :class:`Method` (its typed
parameters in :attr:`Method.parameters`) and :func:`score` applies one. The array functions
of the paper's two methods are here too: :func:`dyn_unc` and :func:`dual` take a (K, N)
probability history.
"""
from __future__ import annotations

import sys
import types
import warnings

from ._registry import Method, get, get_method, list_methods, methods, register, score, score_runs
from .dual import dual  # registers "dual"
from .dyn_unc import dyn_unc
from . import random as _random  # noqa: F401  (registers "random")
# each import registers one method
from . import aum, cartography, el2n, entropy, forgetting, grand, moderate, ssp, tdds  # noqa: F401
from .difficulty import MEASURES as DIFFICULTY_MEASURES, difficulty

__all__ = ["DIFFICULTY_MEASURES", "Method", "difficulty", "dual", "dyn_unc", "get", "get_method", "list_methods",
           "methods", "register", "score", "score_runs"]


class _CallableModule(types.ModuleType):
    """This subpackage's class. ``dataprune.methods`` used to be the function
    :func:`list_methods` (``dataprune/__init__`` rebound the name), so ``dataprune.methods()``
    must keep working; a module cannot be called, hence a module class with ``__call__``
    (deprecated) - and ``import dataprune.methods`` gives this subpackage again."""

    def __call__(self) -> list[str]:
        warnings.warn("dataprune.methods() is deprecated; use dataprune.list_methods()",
                      DeprecationWarning, stacklevel=2)
        return list_methods()


sys.modules[__name__].__class__ = _CallableModule
