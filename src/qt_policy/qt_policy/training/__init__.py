"""Training as library calls: `fit` runs a training to a run folder (plan.py what it will be, run_folder.py
its files, distributed.py data parallelism); the CLI, baselines and tests call it."""
from .data_shape import data_embodiment, model_config_for, resolve_shards
from .fit import FitResult, fit
from .plan import split_overrides

__all__ = ["FitResult", "fit", "split_overrides", "data_embodiment", "model_config_for", "resolve_shards"]
