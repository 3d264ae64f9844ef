"""The sampler over the shards: streaming through a small buffer gives the same transitions as holding
the data whole (frame windows, n-step sums, MC returns), keeps the data's share of success steps, visits
every episode, bounds its memory and open files; slots read disjoint shards; loader workers."""
import os

import numpy as np
import pytest
import torch

from qt_policy.core.config import LossConfig, TrainConfig
from qt_policy.data.bag_writer import write_episode_bag
from qt_policy.data.convert import convert_bags
from qt_policy.data.dataset import TransitionSampler
from qt_policy.data.loader import training_batches
from qt_policy.data.shard_format import load_manifest
from qt_policy.data.shard_reader import slot_shards, stream_shards
from qt_policy.training import model_config_for
from qt_test_helpers.episodes import make_episode

LOSS = LossConfig(n_step=3)


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    """24 distinct episodes (8 successes), one per shard: 2 instructions, lengths 4..9."""
    root = tmp_path_factory.mktemp("shard_data")
    for i in range(24):
        ep = make_episode(T=4 + i % 6, size=8, success=i % 3 == 0, episode_id=f"ep{i:02d}", seed=i,
                          instruction="open" if i % 2 else "close")
        write_episode_bag(root / "bags", ep, start_time_ns=i * 10**9)
    convert_bags(root / "bags", root / "shards", shard_mb=0.0001, progress=False)
    return root / "shards"


def embed(text):
    return np.full(384, 1.0 if text == "open" else -1.0, np.float32)


def sampler(shards, **kw):
    cfg = model_config_for(load_manifest(shards), {"num_bins": 16, "frames": 3})
    return TransitionSampler(shards, cfg, LOSS, embed, **kw)


def mb_for_steps(shards, steps):
    s = sampler(shards)
    return steps * s._bytes_per_step(load_manifest(shards)) / 2**20


def test_streamed_transitions_equal_those_of_the_whole_data(shards):
    whole = sampler(shards)
    assert not whole.streaming and [e.seq for e in whole.episodes] == list(range(24))
    by_seq = {e.seq: i for i, e in enumerate(whole.episodes)}
    small = sampler(shards, buffer_mb=mb_for_steps(shards, 20), stream_seed=1)
    assert small.streaming
    rng = np.random.default_rng(0)
    seen = set()
    for _ in range(60):
        for k, ep in enumerate(small.episodes):
            j = by_seq[ep.seq]
            ref = whole.episodes[j]
            seen.add(ep.seq)
            for name in ("bins", "reward_sum", "discount", "next_index", "mc", "text"):
                np.testing.assert_array_equal(getattr(ep, name), getattr(ref, name))
            steps = np.arange(ep.steps)
            a = small.observation(np.full(ep.steps, k), steps)
            b = whole.observation(np.full(ep.steps, j), steps)
            assert torch.equal(a.images, b.images) and torch.equal(a.state, b.state)  # frame windows too
        small.sample(8, rng, 0.5)
    assert seen == set(range(24))  # the stream went through every episode


def test_streaming_keeps_the_success_share_and_its_memory_bound(shards):
    whole = sampler(shards)
    share = sum(e.steps for e in whole.episodes if e.success) / whole.num_steps
    small = sampler(shards, buffer_mb=mb_for_steps(shards, 30), stream_seed=2)
    rng = np.random.default_rng(1)
    held, from_success = [], []
    for _ in range(200):
        batch = small.sample(16, rng, 0.0)
        steps = sum(e.steps for e in small.episodes)
        assert steps <= small.capacity_steps + 2 * 9  # an episode over, and one success kept
        held.append(sum(e.steps for e in small.episodes if e.success) / steps)
        from_success.append((batch.mc_return > 0).float().mean().item())
    assert abs(np.mean(held) - share) < 0.06
    assert abs(np.mean(from_success) - share) < 0.06  # uniform over steps, as the whole data gives
    balanced = small.sample(16, rng, 0.5)
    assert (balanced.mc_return[:8] > 0).all()


def test_a_stream_keeps_few_files_open(shards):
    fds = lambda: len(os.listdir("/proc/self/fd"))  # noqa: E731
    before = fds()
    small = sampler(shards, buffer_mb=mb_for_steps(shards, 20))
    rng = np.random.default_rng(0)
    for _ in range(20):
        small.sample(8, rng)
    assert fds() - before <= 2  # one shard open per stream at most, whatever the number of shards (24)


def test_slots_read_disjoint_shards_when_there_are_enough(shards):
    manifest = load_manifest(shards)
    streams = stream_shards(manifest, None)
    assert len(streams["successes"]) == 8 and len(streams["failures"]) == 16
    a, b = (slot_shards(streams["failures"], k, 2) for k in (0, 1))
    assert not {s["file"] for s in a} & {s["file"] for s in b} and len(a) + len(b) == 16
    assert slot_shards(streams["successes"], 3, 10) == streams["successes"]  # too few: every slot reads all
    held = [{e.seq for e in sampler(shards, slot=k, slots=2).episodes} for k in (0, 1)]
    assert not held[0] & held[1] and held[0] | held[1] == set(range(24))
    with pytest.raises(ValueError, match="slot"):
        slot_shards(streams["failures"], 2, 2)


def test_a_filter_keeps_only_its_episodes(shards):
    only = sampler(shards, episode_filter=lambda e: e["instruction"] == "open" and not e["success"])
    assert only.num_episodes == 8 and {e.meta["instruction"] for e in only.episodes} == {"open"}
    assert not any(e.success for e in only.episodes)
    with pytest.raises(ValueError, match="pass the filter"):
        sampler(shards, episode_filter=lambda e: e["task"] == "none")


def test_loader_workers_give_batches_of_the_same_data(shards):
    cfg = model_config_for(load_manifest(shards), {"num_bins": 16, "frames": 3})
    train = TrainConfig(batch_size=8, loader_workers=2, buffer_mb=mb_for_steps(shards, 40))
    texts = {"open": embed("open"), "close": embed("close")}
    batches = training_batches(shards, cfg, LOSS, train, texts, None, rank=0, world=1,
                               rng=np.random.default_rng(0), start_step=0, pin_memory=False)
    got = [next(batches) for _ in range(6)]
    for b in got:
        assert len(b) == 8 and b.action_bins.max() < 16 and b.obs.images.shape[1:] == (3, 8, 8, 3)
        assert (b.mc_return[:7] > 0).all()  # the default 0.9 of the batch from successes
        assert set(b.obs.text[:, 0].tolist()) <= {1.0, -1.0}
    assert not torch.equal(got[0].action_bins, got[1].action_bins)  # two workers, two streams
    batches.close()
