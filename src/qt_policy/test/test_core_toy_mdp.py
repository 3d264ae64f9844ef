"""End-to-end proof on a small MDP with a known Q*: the loss learns the optimal policy from mixed data."""
import numpy as np
import pytest

from qt_policy.core import toy_mdp
from qt_policy.core.config import LossConfig

GAMMA = 0.9
# The same per-bin push as the default alpha = 1 spreads over 255 unseen bins, here over 3.
ALPHA = 1.0 * (toy_mdp.NUM_BINS - 1) / 255
Q_TOLERANCE = 0.05


@pytest.fixture(scope="module")
def q_star():
    return toy_mdp.optimal_q(GAMMA)


@pytest.fixture(scope="module")
def trained(q_star):
    cfg = LossConfig(gamma=GAMMA, n_step=1, conservative_weight=ALPHA, use_mc_lower_bound=True)
    return toy_mdp.train(cfg, steps=1500, seed=0)


def test_optimal_q_by_value_iteration_is_what_we_think(q_star):
    # jump (3, 0) then key: reward on the 2nd step; keys only: on the 3rd
    assert q_star[0, 0, 3, 0] == pytest.approx(GAMMA)
    assert q_star[0, 0, 1, 2] == pytest.approx(GAMMA**2)
    assert q_star[0, 0, 1, 3] == 0.0  # trap
    assert q_star[1, 5].max() == 0.0  # too late to reach the goal


def test_greedy_actions_equal_the_optimal_policy(trained, q_star):
    model, _, episodes = trained
    bins, _ = toy_mdp.greedy_table(model)
    optimal = toy_mdp.optimal_chain(q_star)
    mask = toy_mdp.covered_states(episodes, q_star)
    assert mask.sum() >= 10
    wrong = [(p, t, bins[p, t].tolist(), optimal[p, t].tolist()) for p, t in zip(*np.nonzero(mask))
             if not np.array_equal(bins[p, t], optimal[p, t])]
    assert not wrong, f"(pos, t, greedy, optimal): {wrong}"
    # it stitched the jump, which no demonstration contains
    assert bins[0, 0].tolist() == [3, 0]


def test_greedy_q_matches_q_star(trained, q_star):
    model, _, episodes = trained
    _, q = toy_mdp.greedy_table(model)
    mask = toy_mdp.covered_states(episodes, q_star)
    err = np.abs(q - q_star.max(axis=(-1, -2)))[mask]
    assert err.max() < Q_TOLERANCE, err


def test_imitation_on_the_same_data_does_not_find_the_shortcut(q_star):
    model, _, _ = toy_mdp.train(LossConfig(gamma=GAMMA), steps=600, seed=0, algo="bc")
    bins, _ = toy_mdp.greedy_table(model)
    assert bins[0, 0].tolist() != [3, 0]
