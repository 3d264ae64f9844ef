"""research.sampler_coverage: how often a run drew each step of a successful and of a failed episode."""
import numpy as np
import pytest

from qt_test_helpers.episodes import write_drawer_bags


@pytest.fixture(scope="module")
def bags(tmp_path_factory):
    return write_drawer_bags(tmp_path_factory.mktemp("bags"))  # 6 episodes, 45 steps, 11 of them in successes


def test_sampler_coverage_predicts_the_samplers_draws(bags):
    """research.sampler_coverage's expected draws equal what TransitionSampler draws: the share of a
    batch from successful episodes, with and without the success fraction, over many batches."""
    from qt_policy.core.config import LossConfig
    from qt_policy.data.dataset import TransitionSampler
    from qt_policy.data.shard_format import load_manifest
    from qt_policy.research.sampler_coverage import expected_draws
    from qt_policy.training import model_config_for, resolve_shards

    cache = resolve_shards(bags, None, progress=False)
    cfg = model_config_for(load_manifest(cache), {"num_bins": 16})
    sampler = TransitionSampler(cache, cfg, LossConfig(), lambda text: np.zeros(384, np.float32))
    rng = np.random.default_rng(0)
    for fraction, want in ((0.0, 11 / 45), (0.5, 0.5 + 0.5 * 11 / 45)):  # 11 of the 45 steps succeed
        predicted = expected_draws(11, 34, fraction, 16, 400)
        assert predicted["success_share_of_draws"] == pytest.approx(want)
        drawn = np.concatenate([sampler.sample(16, rng, fraction).mc_return.numpy() > 0 for _ in range(400)])
        assert drawn.mean() == pytest.approx(want, abs=0.03)
        assert predicted["per_failure_step"] == pytest.approx(400 * (16 - 8 * (fraction > 0)) / 45)
    only = expected_draws(11, 0, 0.9, 16, 400)  # successes only: uniform over them, the fraction moot
    assert only["per_success_step"] == pytest.approx(400 * 16 / 11) and only["per_failure_step"] == 0.0


def test_a_trained_checkpoints_coverage_reads_its_own_settings(bags, tmp_path):
    """One step of --success-only training: one batch over the 11 successful steps, none of the failures'."""
    from qt_policy.research.sampler_coverage import run_coverage
    from qt_policy.tools.train import main

    out = tmp_path / "bc"
    assert main(["--data", str(bags), "--out", str(out), "--steps", "1", "--algo", "bc", "--success-only",
                 "--num-bins", "16", "--batch-size", "8", "--no-progress", "--threads", "1"]) == 0
    coverage = run_coverage(out / "checkpoint")
    assert (coverage["success_steps"], coverage["failure_steps"], coverage["steps"]) == (11, 0, 1)
    assert coverage["per_success_step"] == pytest.approx(8 / 11)
    assert coverage["per_failure_step"] == 0.0 and coverage["sampler"] == "successes only, uniform"
