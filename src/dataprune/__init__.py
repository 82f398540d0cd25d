"""dataprune: prune large training sets with Dynamic Uncertainty and compare pruning methods.

The public API is what ``__all__`` lists below, in these groups (everything else, including
the subpackages ``train``, ``bench`` and ``cli``, is the command line's engine):

- **record**: :class:`Recorder` writes per-sample training dynamics into a store (``out``,
  the store directory, is its 2nd argument and keyword, as in the Lightning and Hugging Face
  integrations, :mod:`dataprune.integrations`); :class:`WithIndex` adds the sample index to a
  dataset's items.
- **read**: :class:`Dynamics` opens a store.
- **score**: :func:`score` / :func:`score_runs` apply a method by name (higher = keep);
  :func:`list_methods`, :func:`get_method` (a :class:`Method`, its typed parameters in
  ``Method.parameters``) and :func:`register` are the registry. The methods themselves are in
  :mod:`dataprune.methods`.
- **select**: :func:`select` (top-k, class-balanced), :func:`select_stratified` (CCS, with
  :func:`difficulty` for its strata) and :func:`select_beta` turn scores into keep indices;
  :class:`SelectionRule` names any of these rules (or the two-sided one that drops the likely
  mislabeled samples too) and :func:`select_by_rule` applies it, with :func:`rule_inputs`
  reading what the rule needs from the scoring runs: the one path ``dataprune select``, the
  benches and :class:`PruneAt` share.
- **keep files**: :func:`read_keep`, :func:`write_keep`.
- **prune inside a run**: :class:`PruneAt`, the train sampler.
- **fixed compute budgets**: :func:`budget_steps`, :func:`budget_schedule`,
  :func:`budget_lr_lambda`, :func:`lr_factor`.
- **scores export**: :func:`scores_table`, :func:`write_scores`.
- **final outputs** of a scoring run: :func:`save_final_outputs`, :func:`load_features`,
  :func:`load_final_logits`.
- **errors**: :class:`DataPruneError` (a ``ValueError``), :class:`StoreError`,
  :class:`MissingSignalError`.

Deprecated: ``dataprune.methods()`` (use :func:`list_methods`; ``dataprune.methods`` is the
subpackage), ``dataprune.dyn_unc`` and ``dataprune.dual`` (in :mod:`dataprune.methods`, or
``score("dyn-unc", ...)``).
"""
import warnings

from . import methods
from .errors import DataPruneError, MissingSignalError, StoreError
from .keepfile import read_keep, write_keep
from .methods import Method, difficulty, get_method, list_methods, register, score, score_runs
from .record import Recorder, WithIndex
from .run_outputs import load_features, load_final_logits, save_final_outputs
from .scores_export import scores_table, write_scores
from .select import select, select_stratified
from .select_beta import select_beta
from .select_rule import SelectionRule, rule_inputs, select_by_rule
from .store import Dynamics
from .train.prune_at import PruneAt
from .train.schedule import budget_lr_lambda, budget_schedule, budget_steps, lr_factor

from ._version import __version__
__all__ = [
    # record, read
    "Recorder", "WithIndex", "Dynamics",
    # score
    "score", "score_runs", "list_methods", "get_method", "register", "Method",
    # select, keep files, prune inside a run
    "select", "select_stratified", "select_beta", "difficulty", "SelectionRule", "select_by_rule",
    "rule_inputs", "read_keep", "write_keep", "PruneAt",
    # fixed compute budgets
    "budget_steps", "budget_schedule", "budget_lr_lambda", "lr_factor",
    # scores export, final outputs
    "scores_table", "write_scores", "save_final_outputs", "load_features", "load_final_logits",
    # errors
    "DataPruneError", "StoreError", "MissingSignalError",
    "__version__",
]

#: names that left the top level: name -> (where it lives now, what to write instead)
_MOVED = {
    "dyn_unc": (methods, "dataprune.methods.dyn_unc (or dataprune.score('dyn-unc', dynamics))"),
    "dual": (methods, "dataprune.methods.dual (or dataprune.score('dual', dynamics))"),
}


def __getattr__(name: str) -> object:
    """The names in :data:`_MOVED`, with a DeprecationWarning."""
    if name in _MOVED:
        home, instead = _MOVED[name]
        warnings.warn(f"dataprune.{name} is deprecated; use {instead}", DeprecationWarning, stacklevel=2)
        return getattr(home, name)
    raise AttributeError(f"module 'dataprune' has no attribute {name!r}")
