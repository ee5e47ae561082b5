"""Hyperparameter sweeps: trials of a base training job with parameters an Optuna sampler proposes,
pruned from each trial's live eval metrics, every trial an ordinary job of the JobManager.

- spec.py        the Sweep message → a validated SweepSpec (JSON in the sweep run's config), and
                 a trial's TrainingJob: the base job with the trial's parameters set
- search.py      the Optuna study of a sweep: sampler, pruner, distributions, and its rebuild from
                 recorded trials
- record.py      the sweep's durable history (trial events stored as its run's events) folded
                 into trial records, and those as protos
- controller.py  one asyncio task per running sweep: ask, submit, watch, prune, tell, finish
- manager.py     the sweeps of this training service: create, get, list, cancel, stream, recover

Durability is the registry run model jobs already use: a sweep is a run with the sweep's id whose
config holds {"kind": "sweep", "sweep": SweepSpec JSON}; its events are the trials' changes, so a
restarted service rebuilds the search from them. No grpc here, beyond the generated messages.
"""
