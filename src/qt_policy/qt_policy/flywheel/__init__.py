"""The robot improves itself: rounds of deploy -> record -> retrain from a small seed dataset.

`Flywheel(out, config).run()` trains a policy on the seed data, deploys it on fresh placements,
records every episode with its success label as an ordinary episode bag, adds the bags to the data
and trains again, round after round; each finished stage is kept on disk and never redone.
"""
from .config import COLLECT_SEED_START, METHODS, FlywheelConfig
from .loop import Flywheel
from .report import flywheel_summary

__all__ = ["COLLECT_SEED_START", "METHODS", "FlywheelConfig", "Flywheel", "flywheel_summary"]
