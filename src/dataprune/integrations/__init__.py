"""Record training dynamics from other training frameworks, and prune inside their runs; one
module per framework, each importing its framework (install the matching extra, e.g.
``pip install 'dataprune[lightning]'``).

- :mod:`dataprune.integrations.lightning`: ``RecordDynamics`` and ``PruneAtCallback``,
  Lightning callbacks.
- :mod:`dataprune.integrations.transformers`: ``RecordDynamicsTrainer`` / ``with_index`` and
  ``PruneAtTrainer`` for the Hugging Face ``Trainer``.
- timm's training loop: a recipe in docs/integrations.md (no code needed).
"""
from __future__ import annotations

import importlib
from types import ModuleType


def import_framework(module: str, extra: str, integration: str) -> ModuleType:
    """``import module`` for ``integration``; if its package is not installed, raise a
    one-line ``ModuleNotFoundError`` naming the dataprune extra that installs it."""
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as e:
        package = module.split(".")[0]
        if e.name is None or e.name.split(".")[0] != package:
            raise  # the framework is there but something it imports is broken: Python's error says what
        raise ModuleNotFoundError(f"{integration} needs {package}, which is not installed: "
                                  f"pip install 'dataprune[{extra}]'", name=package) from None
