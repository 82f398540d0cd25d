"""dataprune: prune large training sets with Dynamic Uncertainty and compare pruning methods."""
from .errors import DataPruneError, MissingSignalError, StoreError
from .methods import dual, dyn_unc, methods, register, score, score_runs
from .record import Recorder, WithIndex
from .run_outputs import load_features, load_final_logits, save_final_outputs
from .select import select, select_stratified
from .select_beta import select_beta
from .store import Dynamics
from .train.prune_at import PruneAt

__version__ = "0.1.0"
__all__ = ["DataPruneError", "Dynamics", "MissingSignalError", "PruneAt", "Recorder", "StoreError",
           "WithIndex", "dual", "dyn_unc", "load_features", "load_final_logits", "methods", "register",
           "save_final_outputs", "score", "score_runs", "select", "select_beta", "select_stratified", "__version__"]
