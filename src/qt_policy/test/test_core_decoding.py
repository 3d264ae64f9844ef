import itertools

import pytest
import torch

from qt_policy.core.checkpoint import load_model, save_checkpoint
from qt_policy.core.config import ModelConfig
from qt_policy.core.decoding import decode_from_context, greedy_decode
from qt_policy.core.model import QTransformer
from qt_test_helpers.models import random_context, state_model


def assert_greedy_by_teacher_forcing(model, ctx, out):
    """Each dimension's bin is the argmax of Q over all its bins after the bins chosen before it (Q by
    teacher forcing, causal: the padding after the prefix is unseen), and dim_q is that maximum."""
    d = out.bins.shape[1]
    for k in range(out.bins.shape[0]):
        prefix = ()
        for i in range(d):
            row = model.q_values(ctx[k:k + 1], torch.tensor([prefix + (0,) * (d - i)]))[0, i]
            best = int(row.argmax())
            assert out.bins[k, i].item() == best
            assert out.dim_q[k, i].item() == pytest.approx(row[best].item(), abs=1e-5)
            prefix += (best,)

def image_model(action_dim=4, seed=0, **kw) -> QTransformer:
    torch.manual_seed(seed)
    cfg = ModelConfig(action_dim=action_dim, action_low=[-1.0] * action_dim, action_high=[1.0] * action_dim,
                      action_names=[f"a{i}" for i in range(action_dim)], image_size=32, frames=2, conv_channels=[8, 16],
                      tokens_per_frame=4, text_dim=16, d_model=32, num_layers=2, num_heads=2, **kw)
    return QTransformer(cfg).eval()




def test_decoding_equals_exhaustive_search_over_the_chain():
    model = state_model(action_dim=3, num_bins=5)
    images, text, state = random_context(model, batch=3)
    ctx = model.encode_context(images, text, state)
    b, d, n = 3, 3, 5
    # Q of every dimension for every one of the n^d full actions, by teacher forcing
    table = {}
    for combo in itertools.product(range(n), repeat=d):
        bins = torch.tensor([combo] * b)
        table[combo] = model.q_values(ctx, bins).detach()  # (b, d, n)
    out = greedy_decode(model, images, text, state)
    for k in range(b):
        prefix = ()
        for i in range(d):
            full = prefix + (0,) * (d - len(prefix))
            q_row = table[full][k, i]  # depends on the prefix only (causal), not on the zero padding
            best = int(q_row.argmax())
            assert out.bins[k, i].item() == best
            assert out.dim_q[k, i].item() == pytest.approx(q_row[best].item(), abs=1e-5)
            prefix += (best,)
        assert out.q_value[k].item() == pytest.approx(table[prefix][k, d - 1, prefix[-1]].item(), abs=1e-5)


@pytest.mark.parametrize("action_dim", [4, 8, 11])
def test_cached_decoding_equals_uncached_recomputation(action_dim):
    model = state_model(action_dim=action_dim, num_bins=256, seed=action_dim)
    images, text, state = random_context(model, batch=5)
    ctx = model.encode_context(images, text, state)
    cached = decode_from_context(model, ctx, use_cache=True)
    uncached = decode_from_context(model, ctx, use_cache=False)
    assert torch.equal(cached.bins, uncached.bins)
    torch.testing.assert_close(cached.dim_q, uncached.dim_q, atol=1e-5, rtol=0)


def test_cached_equals_uncached_with_images():
    model = image_model()
    images, text, state = random_context(model, batch=3)
    a = greedy_decode(model, images, text, state, use_cache=True)
    b = greedy_decode(model, images, text, state, use_cache=False)
    assert torch.equal(a.bins, b.bins)
    torch.testing.assert_close(a.q_value, b.q_value, atol=1e-5, rtol=0)


def test_greedy_decoding_is_deterministic():
    """Defect: randomised greedy decoding. Same input, same action, every time, without an epsilon."""
    model = state_model(num_bins=256)
    images, text, state = random_context(model, batch=8)
    first = greedy_decode(model, images, text, state)
    for _ in range(5):
        again = greedy_decode(model, images, text, state)
        assert torch.equal(first.bins, again.bins)
        assert torch.equal(first.q_value, again.q_value)


def test_epsilon_exploration_is_explicit_and_reproducible():
    model = state_model(num_bins=256)
    images, text, state = random_context(model, batch=64)
    greedy = greedy_decode(model, images, text, state)
    a = greedy_decode(model, images, text, state, epsilon=1.0, generator=torch.Generator().manual_seed(3))
    b = greedy_decode(model, images, text, state, epsilon=1.0, generator=torch.Generator().manual_seed(3))
    assert torch.equal(a.bins, b.bins)
    assert (a.bins != greedy.bins).float().mean() > 0.9
    with pytest.raises(ValueError):
        greedy_decode(model, images, text, state, epsilon=1.5)


def test_training_and_decoding_use_the_same_bins():
    """Defect: a bin offset between training (teacher forcing) and decoding.

    The Q that decoding reports for its choice must be exactly what the training pass computes
    when fed the decoded bins, and the continuous action must map back to the same bins.
    """
    model = state_model(action_dim=4, num_bins=256)
    images, text, state = random_context(model, batch=6)
    out = greedy_decode(model, images, text, state)
    ctx = model.encode_context(images, text, state)
    q_train = model.q_values(ctx, out.bins).gather(-1, out.bins[..., None])[..., 0]
    torch.testing.assert_close(q_train, out.dim_q, atol=1e-5, rtol=0)
    assert torch.equal(model.discretizer.to_bins(out.values), out.bins)


def test_action_prefix_is_causal():
    model = state_model(action_dim=4, num_bins=16)
    images, text, state = random_context(model, batch=2)
    ctx = model.encode_context(images, text, state)
    bins = torch.randint(0, 16, (2, 4))
    q = model.q_values(ctx, bins)
    changed = bins.clone()
    changed[:, 2] = (changed[:, 2] + 5) % 16
    q2 = model.q_values(ctx, changed)
    torch.testing.assert_close(q[:, :3], q2[:, :3])  # dims 0..2 do not see a^3's bin (index 2)
    assert not torch.allclose(q[:, 3], q2[:, 3])  # dim 3 does


def test_batched_decoding_equals_one_by_one():
    model = image_model()
    images, text, state = random_context(model, batch=4)
    batched = greedy_decode(model, images, text, state)
    for k in range(4):
        single = greedy_decode(model, images[k:k + 1], text[k:k + 1])
        assert torch.equal(single.bins[0], batched.bins[k])
        assert single.q_value[0].item() == pytest.approx(batched.q_value[k].item(), abs=1e-5)


def test_checkpoint_round_trip(tmp_path):
    model = image_model()
    images, text, state = random_context(model, batch=2)
    save_checkpoint(tmp_path / "ckpt", model, {"note": "test"})
    loaded = load_model(tmp_path / "ckpt")
    assert loaded.cfg == model.cfg
    a, b = greedy_decode(model, images, text), greedy_decode(loaded, images, text)
    assert torch.equal(a.bins, b.bins) and torch.equal(a.q_value, b.q_value)


def test_wrong_image_shape_is_a_clear_error():
    model = image_model()
    images, text, _ = random_context(model, batch=1)
    with pytest.raises(ValueError, match="images must be"):
        greedy_decode(model, images[:, :, :16], text)


def test_default_model_is_small():
    from qt_policy.core.model import count_parameters
    n = count_parameters(QTransformer(ModelConfig()))
    assert 2e5 < n < 5e6, n


# ----- the fused greedy decoder (core/fast_decoding.py): the same choices as the reference ------------

def with_trained_norms(model, seed=3):
    """LayerNorm gains and shifts away from their init (1, 0), so folding them into the weights is tested."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.LayerNorm):
                module.weight.copy_(1.0 + 0.3 * torch.randn(module.weight.shape, generator=g))
                module.bias.copy_(0.2 * torch.randn(module.bias.shape, generator=g))
    return model


def test_fused_decoding_equals_exhaustive_search_over_the_chain():
    from qt_policy.core.fast_decoding import FusedGreedyDecoder

    model = with_trained_norms(state_model(action_dim=3, num_bins=5))
    images, text, state = random_context(model, batch=3)
    ctx = model.encode_context(images, text, state)
    out = FusedGreedyDecoder(model)(ctx)
    assert_greedy_by_teacher_forcing(model, ctx, out)


@pytest.mark.parametrize("action_dim", [1, 4, 8, 11])
@pytest.mark.parametrize("num_bins", [32, 256])
def test_fused_decoding_equals_the_reference(action_dim, num_bins):
    from qt_policy.core.fast_decoding import FusedGreedyDecoder

    model = with_trained_norms(state_model(action_dim=action_dim, num_bins=num_bins, seed=action_dim))
    fused = FusedGreedyDecoder(model)
    for batch in (5, 1, 5):  # a new batch size reallocates the cache; the old one reuses it
        images, text, state = random_context(model, batch=batch, seed=batch + action_dim)
        ctx = model.encode_context(images, text, state)
        ref, out = decode_from_context(model, ctx), fused(ctx)
        assert torch.equal(ref.bins, out.bins)
        torch.testing.assert_close(out.dim_q, ref.dim_q, atol=1e-5, rtol=0)
        torch.testing.assert_close(out.values, ref.values, atol=0, rtol=0)


def test_fused_decoding_with_images_and_in_inference_mode():
    from qt_policy.core.fast_decoding import FusedGreedyDecoder

    model = with_trained_norms(image_model())
    fused = FusedGreedyDecoder(model)
    images, text, state = random_context(model, batch=3)
    ref = greedy_decode(model, images, text, state)
    with torch.inference_mode():  # the node decodes in inference mode, tests outside it: the cache follows
        a = fused(model.encode_context(images, text, state))
    b = fused(model.encode_context(images, text, state))
    assert torch.equal(a.bins, ref.bins) and torch.equal(b.bins, ref.bins)
    torch.testing.assert_close(a.q_value, ref.q_value, atol=1e-5, rtol=0)


# ----- 7 action dimensions and two cameras (the robosuite Panda's layout) ------------------------------

def panda_like_model(num_bins=16, seed=7):
    """7-D action (dx dy dz droll dpitch dyaw gripper), scene + wrist camera, a robot state."""
    model = with_trained_norms(image_model(action_dim=7, seed=seed, cameras=2, state_dim=9, num_bins=num_bins))
    with torch.no_grad():
        model.head_weight.mul_(4.0)  # well separated argmaxes
    return model


def test_two_cameras_seven_dims_cached_uncached_fused_and_chain_search_agree():
    from qt_policy.core.fast_decoding import FusedGreedyDecoder

    model = panda_like_model()
    images, text, state = random_context(model, batch=3, seed=11)
    assert images.shape == (3, 2, 2, 32, 32, 3)  # (B, F, K, H, W, 3)
    ctx = model.encode_context(images, text, state)
    assert ctx.shape[1] == model.num_context_tokens == 2 * 2 * 4 + 2  # frames x cameras x tokens + text + state
    cached = greedy_decode(model, images, text, state, use_cache=True)
    uncached = greedy_decode(model, images, text, state, use_cache=False)
    fused = FusedGreedyDecoder(model)(ctx)
    assert torch.equal(cached.bins, uncached.bins) and torch.equal(cached.bins, fused.bins)
    torch.testing.assert_close(cached.dim_q, uncached.dim_q, atol=1e-5, rtol=0)
    torch.testing.assert_close(fused.dim_q, cached.dim_q, atol=1e-5, rtol=0)
    assert_greedy_by_teacher_forcing(model, ctx, cached)  # every choice: the argmax after the chosen prefix


def test_each_camera_has_its_own_tokens():
    """A camera's image changes only its own tokens, and the cameras are told apart: the same
    picture seen by the scene camera or by the wrist camera gives different tokens."""
    model = panda_like_model()
    images, text, state = random_context(model, batch=2, seed=5)
    base = model.encode_context(images, text, state).detach()
    per_camera = base[:, :16].view(2, 2, 2, 4, -1)  # (B, F, K, tokens, d)
    changed = images.clone()
    changed[:, :, 1] = 255 - changed[:, :, 1]  # only the wrist camera's frames
    out = model.encode_context(changed, text, state).detach()[:, :16].view(2, 2, 2, 4, -1)
    torch.testing.assert_close(out[:, :, 0], per_camera[:, :, 0], atol=0, rtol=0)
    assert (out[:, :, 1] - per_camera[:, :, 1]).abs().max() > 1e-3
    same = images.clone()
    same[:, :, 1] = same[:, :, 0]  # both cameras see the same picture
    tokens = model.encode_context(same, text, state).detach()[:, :16].view(2, 2, 2, 4, -1)
    diff = tokens[:, :, 1] - tokens[:, :, 0]
    torch.testing.assert_close(diff, (model.camera_embed[1] - model.camera_embed[0]).detach().expand_as(diff),
                               atol=1e-5, rtol=0)


def test_a_one_camera_model_has_no_camera_embedding():
    """Checkpoints from before cameras existed load unchanged: their state dict has no such weight."""
    assert not hasattr(image_model(), "camera_embed")
    with pytest.raises(ValueError, match="images must be"):
        panda_like_model().encode_context(torch.zeros(1, 2, 32, 32, 3, dtype=torch.uint8), torch.zeros(1, 16),
                                          torch.zeros(1, 9))
