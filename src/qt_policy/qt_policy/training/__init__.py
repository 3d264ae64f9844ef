"""Training as library calls: `fit` runs a training to a run folder; the CLI, baselines and tests call it."""
from .data_shape import cache_dir_for, data_embodiment, model_config_for, resolve_cache
from .fit import FitResult, fit, split_overrides

__all__ = ["FitResult", "fit", "split_overrides", "cache_dir_for", "data_embodiment", "model_config_for", "resolve_cache"]
