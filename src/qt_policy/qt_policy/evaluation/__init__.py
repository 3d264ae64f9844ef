"""Closed-loop evaluation as library calls: rollouts on the simulated arm (the harness), the same
episodes through the ROS graph, and success rates with intervals. The CLI, the baselines and the
probes call these."""
from .rollout import EVAL_SEED_START, BatchPolicy, evaluate, run_task
from .stats import summarize, wilson_interval
from .through_ros import evaluate_through_ros

__all__ = ["EVAL_SEED_START", "BatchPolicy", "evaluate", "run_task", "summarize", "wilson_interval",
           "evaluate_through_ros"]
