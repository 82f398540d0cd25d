"""dataprune: prune large training sets with Dynamic Uncertainty and compare pruning methods."""
from .errors import DataPruneError, MissingSignalError, StoreError
from .methods import dyn_unc, methods, register, score
from .record import Recorder, WithIndex
from .select import select
from .store import Dynamics

__version__ = "0.1.0"
__all__ = ["DataPruneError", "Dynamics", "MissingSignalError", "Recorder", "StoreError",
           "WithIndex", "dyn_unc", "methods", "register", "score", "select", "__version__"]
