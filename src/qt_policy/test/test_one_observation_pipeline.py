"""One observation pipeline: for a non-square camera, the tensor the policy feeds the model equals,
bit for bit, the tensor training builds from the bag the recorder wrote of the same frames; the
evaluation rollout prepares frames the same way.

The frames go in as the node receives them (raw sensor_msgs/Image CDR, bgr8 with row padding);
the recorder writes them; the converter writes them at the model's size into shards; the TransitionSampler gives
the window of each step. The policy node gets the same messages as rclpy messages through its own
frame entry point (decode, stamp, decide), and what its runner hands to the model is captured.
"""
import cv2
import numpy as np
import pytest
import rclpy
import torch
from rclpy.lifecycle import TransitionCallbackReturn
from rclpy.parameter import Parameter
from rclpy.serialization import deserialize_message, serialize_message
from sensor_msgs.msg import Image

from qt_policy.core.checkpoint import save_checkpoint
from qt_policy.core.config import LossConfig, ModelConfig
from qt_policy.core.model import QTransformer
from qt_policy.data import bag_format as bf
from qt_policy.data.convert import convert_bags
from qt_policy.data.dataset import TransitionSampler
from qt_policy.core import text as text_module
from qt_policy.data.observation import prepare_frame
from qt_policy.nodes.policy_node import PolicyNode
from qt_policy.runtime.episode_recorder import EpisodeRecorder

SIZE = 32
NAMES = ["dx", "dy", "dz", "gripper"]
T0 = 1_800_000_000 * 10**9


def encoder(text):
    v = np.zeros(384, np.float32)
    v[0] = 1.0
    return v


def padded_bgr_image_cdr(ts, bgr, stamp_ns, pad=7):
    """A bgr8 Image with `pad` bytes of padding per row, as some camera drivers send."""
    h, w, _ = bgr.shape
    rows = np.zeros((h, w * 3 + pad), np.uint8)
    rows[:, : w * 3] = bgr.reshape(h, w * 3)
    msg = ts.types[bf.IMAGE_TYPE](header=bf.make_header(stamp_ns, "camera", ts), height=h, width=w, encoding="bgr8",
                                  is_bigendian=0, step=w * 3 + pad, data=rows.reshape(-1))
    return ts.serialize_cdr(msg, bf.IMAGE_TYPE), msg


@pytest.mark.parametrize("shape", [(480, 640), (640, 480)])
def test_node_input_equals_training_input_bit_for_bit(tmp_path, monkeypatch, shape):
    ts = bf.get_episode_typestore()
    torch.manual_seed(0)
    cfg = ModelConfig(image_size=SIZE, frames=3, conv_channels=[8, 16], tokens_per_frame=4, d_model=32, num_layers=1,
                      num_heads=2)
    ckpt = save_checkpoint(tmp_path / "model", QTransformer(cfg))
    rng = np.random.default_rng(1)
    frames = [rng.integers(0, 256, (*shape, 3), dtype=np.uint8) for _ in range(5)]

    # the robot: the policy node's own frame entry point (what its frame worker runs: decode, stamp,
    # decide) on each message as rclpy delivers it; capture what its runner gives the model
    context = rclpy.context.Context()
    rclpy.init(context=context)
    monkeypatch.setattr(text_module, "shared_encoder", lambda: encoder)  # no sentence model in this test
    node = PolicyNode(context=context, parameter_overrides=[
        Parameter("checkpoint", value=str(ckpt)), Parameter("autostart", value=False),
        Parameter("dry_run", value=True), Parameter("stale_timeout_s", value=60.0)])
    seen, published = [], []
    try:
        ok = TransitionCallbackReturn.SUCCESS
        assert node.trigger_configure() == ok and node.trigger_activate() == ok
        real_act = node.runner.policy.act

        def capture(images, text, state):  # what the backend (torch or onnxruntime) is given
            seen.append(torch.from_numpy(np.array(images[0])))
            return real_act(images, text, state)

        monkeypatch.setattr(node.runner.policy, "act", capture)
        monkeypatch.setattr(node._action_pub, "publish", published.append)
        start = node._now() - 10.0  # arrival times on the node's clock, one control period apart
        node._encode_instruction(("open the drawer", start, None))  # the node's instruction worker
        recorder = EpisodeRecorder(tmp_path / "bags", wall_clock_ns=lambda: T0)
        recorder.start("open the drawer", now=0.0, log_time_ns=T0)
        for t, rgb in enumerate(frames):
            stamp = T0 + (t + 1) * 100_000_000
            raw, _ = padded_bgr_image_cdr(ts, rgb[:, :, ::-1], stamp)
            recorder.record(bf.IMAGE_TOPIC, bf.IMAGE_TYPE, raw, stamp + 1000)  # what the recorder gets
            node._process_frame((deserialize_message(bytes(raw), Image), start + 1.0 + t * 0.1, 0))
            assert len(published) == t + 1, f"the node did not act on frame {t}"
            recorder.record(bf.ACTION_TOPIC, bf.QACTION_TYPE, serialize_message(published[-1]), stamp + 2000)
    finally:
        node.destroy_node()
        rclpy.try_shutdown(context=context)
    assert recorder.end(True, "service").num_steps == len(frames)

    # training: bag -> shards at the model's size -> the sampler's window of each step
    convert_bags(tmp_path / "bags", tmp_path / "shards", image_size=SIZE, progress=False)
    sampler = TransitionSampler(tmp_path / "shards", cfg, LossConfig(), encoder)
    for t in range(len(frames)):
        trained = sampler.observation(np.array([0]), np.array([t])).images[0]
        assert trained.dtype == seen[t].dtype and torch.equal(trained, seen[t]), f"step {t}"
    # and the frame is the centre crop, resized: not squashed
    side = min(shape)
    top, left = (shape[0] - side) // 2, (shape[1] - side) // 2
    crop = frames[-1][top: top + side, left: left + side]
    np.testing.assert_array_equal(seen[-1][-1].numpy(), prepare_frame(crop, SIZE))
    squashed = cv2.resize(frames[-1], (SIZE, SIZE), interpolation=cv2.INTER_AREA)  # what the training data held before
    assert not np.array_equal(seen[-1][-1].numpy(), squashed)
