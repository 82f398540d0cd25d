"""Record training dynamics from other training frameworks; one module per framework, each
importing its framework (install the matching extra, e.g. ``pip install dataprune[lightning]``).

- :mod:`dataprune.integrations.lightning`: ``RecordDynamics``, a Lightning callback.
- :mod:`dataprune.integrations.transformers`: ``RecordDynamicsTrainer`` / ``with_index`` for
  the Hugging Face ``Trainer``.
- timm's training loop: a recipe in docs/integrations.md (no code needed).
"""
