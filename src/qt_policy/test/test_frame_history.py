"""The frame history a policy builds at run time is the window training samples (one rule)."""
from collections import deque

import numpy as np
import pytest

from qt_policy.data.observation import FrameHistory, frame_window, stack_history


@pytest.mark.parametrize("frames", [1, 2, 3])
def test_run_time_history_equals_training_window(frames):
    episode = np.arange(6, dtype=np.float32)[:, None] * np.ones((1, 2), np.float32)  # frame t is filled with t
    windows = episode[frame_window(np.arange(len(episode)), frames)]
    bounded = deque(maxlen=frames)
    history = FrameHistory(frames)  # as the policy node and the evaluation rollouts keep it
    for t, frame in enumerate(episode):
        bounded.append(frame)
        np.testing.assert_array_equal(stack_history(bounded, frames), windows[t])
        np.testing.assert_array_equal(history.push(frame), windows[t])
        assert len(history) == min(t + 1, frames)
        np.testing.assert_array_equal(stack_history(list(episode[: t + 1]), frames), windows[t])


def test_start_of_episode_repeats_the_first_frame():
    first = np.full((2, 2), 7, np.uint8)
    stacked = stack_history([first], 3)
    assert stacked.shape == (3, 2, 2) and (stacked == 7).all()


def test_empty_history_is_an_error():
    with pytest.raises(ValueError, match="at least one frame"):
        stack_history([], 2)
