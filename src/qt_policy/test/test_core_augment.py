import numpy as np
import pytest
import torch

from qt_policy.core.augment import augment_batch, random_shift
from qt_policy.core.batch import Observation, TransitionBatch
from qt_policy.core.config import LossConfig, ModelConfig, TrainConfig
from qt_policy.core.learner import Learner
from qt_policy.core.model import QTransformer


def images(b=6, f=2, h=9, w=7, seed=0):
    return torch.from_numpy(np.random.default_rng(seed).integers(0, 256, (b, f, h, w, 3), dtype=np.uint8))


def reference_shift(img: np.ndarray, dy: int, dx: int, pad: int) -> np.ndarray:
    """Replicate-pad by `pad`, crop the window moved by (dy, dx): what DrQ does, written plainly."""
    padded = np.pad(img, ((0, 0), (pad, pad), (pad, pad), (0, 0)), mode="edge")
    h, w = img.shape[1:3]
    return padded[:, pad + dy: pad + dy + h, pad + dx: pad + dx + w]


def test_zero_pad_is_the_identity():
    x = images()
    assert random_shift(x, 0) is x


def test_each_sample_equals_replicate_pad_and_crop_with_one_shift_for_all_its_frames():
    x = images(b=40)
    pad = 3
    out = random_shift(x, pad, torch.Generator().manual_seed(1))
    assert out.dtype == torch.uint8 and out.shape == x.shape
    seen = set()
    for i in range(len(x)):
        matches = [(dy, dx) for dy in range(-pad, pad + 1) for dx in range(-pad, pad + 1)
                   if np.array_equal(out[i].numpy(), reference_shift(x[i].numpy(), dy, dx, pad))]
        assert matches, f"sample {i} is not a replicate-padded crop of its frames (same shift for every frame)"
        seen.add(matches[0])
    assert len(seen) > 10  # samples get their own shifts, drawn over the whole range


def test_shifts_are_reproducible_from_the_generator():
    x = images(b=16)
    a = random_shift(x, 2, torch.Generator().manual_seed(5))
    b = random_shift(x, 2, torch.Generator().manual_seed(5))
    c = random_shift(x, 2, torch.Generator().manual_seed(6))
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_negative_pad_is_refused():
    with pytest.raises(ValueError, match="pad"):
        random_shift(images(), -1)
    with pytest.raises(ValueError, match="augment_shift"):
        TrainConfig(augment_shift=-2)


def _batch(b=8, size=16):
    obs = Observation(text=torch.randn(b, 384), images=images(b, 2, size, size, seed=1), state=torch.randn(b, 4))
    nxt = Observation(text=obs.text, images=images(b, 2, size, size, seed=2), state=torch.randn(b, 4))
    return TransitionBatch(obs, torch.randint(0, 8, (b, 4)), torch.zeros(b), torch.full((b,), 0.9), nxt, torch.zeros(b))


def test_augment_batch_shifts_both_observations_independently_and_nothing_else():
    batch = _batch(b=32)
    out = augment_batch(batch, 2, torch.Generator().manual_seed(0))
    assert not torch.equal(out.obs.images, batch.obs.images)
    assert not torch.equal(out.next_obs.images, batch.next_obs.images)
    for field in ("action_bins", "reward_sum", "discount", "mc_return"):
        assert getattr(out, field) is getattr(batch, field)
    assert out.obs.state is batch.obs.state and out.obs.text is batch.obs.text
    # independent draws: feeding s_{t+n} the same frames as s_t does not give the same shifted frames
    same = augment_batch(_batch_with_next_equal_obs(batch), 2, torch.Generator().manual_seed(0))
    assert not torch.equal(same.obs.images, same.next_obs.images)


def _batch_with_next_equal_obs(batch):
    from dataclasses import replace
    return replace(batch, next_obs=batch.obs)


@pytest.mark.parametrize("algo", ["qt", "bc"])
def test_learner_trains_on_shifted_images_only_when_asked(algo, monkeypatch):
    """The learner's update passes shifted frames to the loss when augment_shift > 0, the frames as
    given when it is 0."""
    seen = []
    import qt_policy.core.learner as learner_mod

    def spy(batch, pad, generator):
        out = augment_batch(batch, pad, generator)
        seen.append((pad, torch.equal(out.obs.images, batch.obs.images)))
        return out

    monkeypatch.setattr(learner_mod, "augment_batch", spy)
    from qt_policy.core.algorithms import model_requirements
    cfg = ModelConfig(image_size=16, state_dim=4, num_bins=8, d_model=32, num_heads=2, num_layers=1, conv_channels=[8, 8],
                      **model_requirements(algo, LossConfig()))
    for shift in (0, 2):
        learner = Learner(QTransformer(cfg), LossConfig(), TrainConfig(algo=algo, augment_shift=shift))
        info = learner.update(_batch(size=16))
        assert np.isfinite(info["loss"])
    assert seen == [(0, True), (2, False)]


def test_two_cameras_shift_like_frames_of_one_sample():
    """(B, F, K, H, W, 3): every frame of every camera of a sample moves by the sample's one shift."""
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (3, 2, 2, 12, 12, 3), dtype=torch.uint8, generator=g)
    shifted = random_shift(images, 2, torch.Generator().manual_seed(4))
    flat = random_shift(images.flatten(1, 2), 2, torch.Generator().manual_seed(4))
    assert shifted.shape == images.shape and shifted.dtype == torch.uint8
    assert torch.equal(shifted.flatten(1, 2), flat)
    images[:, :, 1] = images[:, :, 0]  # the same picture in both cameras moves the same way
    shifted = random_shift(images, 2, torch.Generator().manual_seed(4))
    assert torch.equal(shifted[:, :, 0], shifted[:, :, 1]) and not torch.equal(shifted, images)
