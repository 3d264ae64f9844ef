import numpy as np
import pytest
import torch

from qt_policy.core.discretizer import Discretizer, make_discretizer


def test_bounds_map_to_edge_bins_and_back_exactly():
    disc = make_discretizer([-1, 0, -2], [1, 5, 2], num_bins=256)
    bins = disc.to_bins(np.array([[-1.0, 0.0, -2.0], [1.0, 5.0, 2.0]]))
    assert bins.tolist() == [[0, 0, 0], [255, 255, 255]]
    np.testing.assert_allclose(disc.to_values(bins), [[-1, 0, -2], [1, 5, 2]], atol=1e-6)


def test_out_of_range_clips_to_edges():
    disc = Discretizer.uniform(2, num_bins=11)
    assert disc.to_bins(np.array([-7.0, 3.0])).tolist() == [0, 10]


@pytest.mark.parametrize("num_bins", [2, 3, 16, 256])
def test_round_trip_error_at_most_half_a_bin(num_bins):
    disc = make_discretizer([-1, -0.5, 0], [1, 0.5, 3], num_bins=num_bins)
    rng = np.random.default_rng(0)
    x = rng.uniform(disc.low, disc.high, size=(5000, 3))
    err = np.abs(disc.to_values(disc.to_bins(x)) - x)
    assert np.all(err <= disc.bin_width / 2 + 1e-6)
    # and the bound is tight: some values land close to half a bin away
    assert np.all(err.max(axis=0) > 0.45 * disc.bin_width)


def test_numpy_and_torch_agree():
    disc = Discretizer.uniform(4, num_bins=256)
    x = np.random.default_rng(1).uniform(-1.2, 1.2, size=(100, 4))
    np.testing.assert_array_equal(disc.to_bins(x), disc.to_bins(torch.tensor(x)).numpy())
    b = disc.to_bins(x)
    np.testing.assert_allclose(disc.to_values(b), disc.to_values(torch.tensor(b)).numpy(), atol=1e-6)


def test_bins_are_monotone_in_value():
    disc = Discretizer.uniform(1, num_bins=256)
    x = np.linspace(-1, 1, 2001)[:, None]
    assert np.all(np.diff(disc.to_bins(x)[:, 0]) >= 0)


def test_rejects_bad_bounds():
    with pytest.raises(ValueError):
        make_discretizer([1.0], [1.0])
    with pytest.raises(ValueError):
        make_discretizer([0.0], [1.0], num_bins=1)
