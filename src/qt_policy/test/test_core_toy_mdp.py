"""End-to-end proof on a small MDP with a known Q*: the loss learns the optimal policy from mixed data."""
import numpy as np
import pytest

from qt_policy.core import toy_mdp
from qt_policy.core.config import LossConfig, TrainConfig

GAMMA = 0.9
# A weak pull per bin (alpha 1 averaged over 255 unseen bins, the paper's bins), on every unseen bin.
ALPHA = 1.0 / 255
Q_TOLERANCE = 0.05


@pytest.fixture(scope="module")
def q_star():
    return toy_mdp.optimal_q(GAMMA)


@pytest.fixture(scope="module")
def trained(q_star):
    cfg = LossConfig(gamma=GAMMA, n_step=1, conservative_weight=ALPHA, conservatism="zero", use_mc_lower_bound=True)
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


def _greedy_optimal_share(model, episodes, q_star) -> tuple[float, list]:
    bins, _ = toy_mdp.greedy_table(model)
    optimal = toy_mdp.optimal_chain(q_star)
    mask = toy_mdp.covered_states(episodes, q_star)
    wrong = [(p, t) for p, t in zip(*np.nonzero(mask)) if not np.array_equal(bins[p, t], optimal[p, t])]
    return 1.0 - len(wrong) / mask.sum(), wrong


@pytest.mark.parametrize("seed", [0, 1])
def test_the_shipped_defaults_keep_the_better_than_demonstrated_action(seed):
    """The shipped recipe as `qt-train` runs it (LossConfig(), TrainConfig(): cross-entropy, support
    conservatism at the shipped per-bin pull, 9/10 of each batch from successes, 4-step returns, Polyak
    target, acting with the averaged weights), with only the network and the step count reduced: the
    greedy action is Q*'s in at least 95% of the covered states, the jump no demonstration takes included."""
    loss_cfg, train_cfg = LossConfig(), TrainConfig()
    q_star = toy_mdp.optimal_q(loss_cfg.gamma)
    model, _, episodes = toy_mdp.train(loss_cfg, steps=1500, seed=seed, train_cfg=train_cfg)
    share, wrong = _greedy_optimal_share(model, episodes, q_star)
    assert share >= 0.95, f"greedy != Q*'s greedy at (pos, t) {wrong}"
    assert toy_mdp.greedy_table(model)[0][0, 0].tolist() == list(toy_mdp.JUMP[0][0])


def test_the_papers_pull_on_every_unseen_bin_hides_the_jump_at_the_same_strength():
    """Why the default spares the data's support: the same settings with every non-dataset bin pulled
    toward 0 ("zero", the paper's form) copy the demonstrations' key action at the start instead."""
    loss_cfg, train_cfg = LossConfig(conservatism="zero"), TrainConfig()
    model, _, _ = toy_mdp.train(loss_cfg, steps=1500, seed=0, train_cfg=train_cfg)
    assert toy_mdp.greedy_table(model)[0][0, 0].tolist() == list(toy_mdp.KEY[0])
