"""The training engine behind ``dataprune record``, ``train``, ``demo`` and ``bench``: datasets
(IDX files in memory, image folders streamed from disk), models, the epoch loop on torch's own
DataLoader, autocast and DDP, resumable run folders, and pruning inside one run (``PruneAt``,
InfoBatch, the matched-compute budget)."""
