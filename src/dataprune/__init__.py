"""dataprune: prune large training sets with Dynamic Uncertainty and compare pruning methods."""
from .errors import DataPruneError, MissingSignalError, StoreError
from .keepfile import read_keep, write_keep
from .methods import difficulty, dual, dyn_unc, methods, register, score, score_runs
from .record import Recorder, WithIndex
from .run_outputs import load_features, load_final_logits, save_final_outputs
from .scores_export import scores_table, write_scores
from .select import select, select_stratified
from .select_beta import select_beta
from .store import Dynamics
from .train.prune_at import PruneAt
from .train.schedule import budget_lr_lambda, budget_schedule, budget_steps, lr_factor

from ._version import __version__
__all__ = ["DataPruneError", "Dynamics", "MissingSignalError", "PruneAt", "Recorder", "StoreError",
           "WithIndex", "budget_lr_lambda", "budget_schedule", "budget_steps", "difficulty", "dual", "dyn_unc", "load_features", "load_final_logits", "lr_factor", "methods",
           "read_keep", "register", "save_final_outputs", "score", "score_runs", "scores_table", "select",
           "select_beta", "select_stratified", "write_keep", "write_scores", "__version__"]
