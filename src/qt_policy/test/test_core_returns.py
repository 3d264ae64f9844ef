import numpy as np
import pytest

from qt_policy.core.returns import n_step_returns, returns_to_go

G = 0.9


def test_returns_to_go_is_per_step_not_a_scalar():
    rtg = returns_to_go([0, 0, 0, 1], G)
    np.testing.assert_allclose(rtg, [G**3, G**2, G, 1.0], rtol=1e-6)
    np.testing.assert_allclose(returns_to_go([0, 0, 0], G), [0, 0, 0])


def test_n_step_in_the_middle_matches_hand_computation():
    rewards = [0, 0, 0, 0, 0, 1]  # T = 6, success on the last step
    sums, disc, idx = n_step_returns(rewards, G, n=3)
    # t=0: bootstrap from s_3 with gamma^3, no reward inside the window
    assert sums[0] == 0 and disc[0] == pytest.approx(G**3) and idx[0] == 3
    # t=2: window r2, r3, r4 = 0, bootstrap from s_5 (inside the episode)
    assert sums[2] == 0 and disc[2] == pytest.approx(G**3) and idx[2] == 5


def test_n_step_near_the_end_never_bootstraps_past_it():
    rewards = [0, 0, 0, 0, 0, 1]
    sums, disc, idx = n_step_returns(rewards, G, n=3)
    # t=3: window r3, r4, r5 reaches the end: reward G^2 * 1, no bootstrap
    assert sums[3] == pytest.approx(G**2) and disc[3] == 0.0
    # t=4: only two steps left
    assert sums[4] == pytest.approx(G) and disc[4] == 0.0
    # t=5: the final step: reward only
    assert sums[5] == pytest.approx(1.0) and disc[5] == 0.0
    assert np.all(idx < len(rewards))


def test_failed_episode_end_has_zero_target():
    sums, disc, _ = n_step_returns([0, 0, 0], G, n=2)
    assert sums.tolist() == [0, 0, 0]
    assert disc.tolist() == pytest.approx([G**2, 0, 0])


def test_one_step_is_plain_td():
    rewards = [0, 0, 1]
    sums, disc, idx = n_step_returns(rewards, G, n=1)
    np.testing.assert_allclose(sums, rewards)
    np.testing.assert_allclose(disc, [G, G, 0])
    assert idx.tolist() == [1, 2, 2]
