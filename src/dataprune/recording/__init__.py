"""The pieces :class:`dataprune.Recorder` (:mod:`dataprune.record`) is made of, one job each:
per-batch signal maths (:mod:`.signals`), input checks (:mod:`.checks`), the per-epoch
device table (:mod:`.table`) with the carried TDDS state (:mod:`.tdds`), the merge of the
ranks' tables under torch.distributed (:mod:`.merge`) and the never-seen check (:mod:`.coverage`)."""
