"""Offline checks of a trained Q-function against the dataset, without running the robot.

Teacher forcing: feed the dataset bins of dimensions 1..i-1 and ask which bin of dimension i the
greedy policy would take. On successful episodes a good Q-function agrees with the data (the
dataset there is near-expert); on failures it should not have to. This separates "the Q-function
has not learnt which actions are good" from "closed-loop drift" when evaluation disappoints.

Start values: the greedy Q at the first step of each episode, split by the episode's outcome. The
optimal value of a start state does not depend on which policy then acted, so where successes and
failures start from alike scenes the two means should be close; a Q-function that gives the start
of failed episodes far less has explained their returns by the scene, not by the actions. Where
they start from the same scenes, the Q of the first action taken should rank the successful
episodes' above the failed ones'.
"""
from __future__ import annotations

import torch

from .batch import Observation, TransitionBatch
from .model import QTransformer


@torch.no_grad()
def teacher_forced_agreement(model: QTransformer, batch: TransitionBatch, mask: torch.Tensor) -> dict:
    """Per action dimension, over the samples selected by `mask` (B,) bool: the median and mean
    |greedy bin - dataset bin|, the fraction within 1 bin, the mean Q of the dataset bin and of
    the greedy bin (the max)."""
    context = model.encode_context(batch.obs.images, batch.obs.text, batch.obs.state)
    q = model.q_values(context, batch.action_bins)[mask]  # (n, d, bins)
    data_bins = batch.action_bins[mask]
    distance = (q.argmax(-1) - data_bins).abs().float()
    return {
        "samples": int(mask.sum()),
        "median_bin_distance": distance.median(0).values.tolist(),
        "mean_bin_distance": distance.mean(0).tolist(),
        "within_one_bin": (distance <= 1).float().mean(0).tolist(),
        "q_dataset_bin": q.gather(-1, data_bins[..., None])[..., 0].mean(0).tolist(),
        "q_greedy_bin": q.max(-1).values.mean(0).tolist(),
    }


@torch.no_grad()
def start_values(model: QTransformer, starts: Observation, first_bins: torch.Tensor, successful: torch.Tensor,
                 chunk: int = 256) -> dict:
    """At the start states of successful and of failed episodes: the mean greedy Q, max_b Q(s_0, a^1 = b),
    and the mean Q of the action the episode took there, Q(s_0, a_0) (its last dimension's Q with the
    dataset prefix). first_bins: (n, d) dataset bins of every episode's first action."""
    part = lambda x, i: None if x is None else x[i:i + chunk]  # noqa: E731
    greedy, taken = [], []
    for i in range(0, len(starts.text), chunk):
        context = model.encode_context(part(starts.images, i), part(starts.text, i), part(starts.state, i))
        bins = first_bins[i:i + chunk]
        greedy.append(model.first_dim_q(context).max(-1).values)
        taken.append(model.q_values(context, bins)[:, -1].gather(-1, bins[:, -1:])[:, 0])
    greedy, taken = torch.cat(greedy), torch.cat(taken)
    mean = lambda x, keep: x[keep].mean().item() if keep.any() else float("nan")  # noqa: E731
    return {"successful": mean(greedy, successful), "failed": mean(greedy, ~successful),
            "first_action_successful": mean(taken, successful), "first_action_failed": mean(taken, ~successful)}
