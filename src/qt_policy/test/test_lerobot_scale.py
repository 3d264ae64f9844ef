"""LeRobot at scale: every camera exported (one video feature each) and imported, episodes known by the
dataset's own ids (a moved dataset is not imported twice), and a span decoded by seeking inside a file
of many episodes (the same frames as decoding the whole file)."""
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from qt_policy.data.bag_writer import write_episode_bag
from qt_policy.data.convert import convert_bags
from qt_policy.data.episode import EpisodeData
from qt_policy.data.lerobot import LeRobotFormatError, decode_video, export_bags, read_lerobot_episodes
from qt_policy.data.observation import prepare_frames
from qt_policy.data.shard_reader import read_all
from qt_test_helpers.recording import doctor, smooth_episode

REFERENCE = Path(__file__).resolve().parents[3].parent / "shared" / "data" / "lerobot_v3_reference"
CODEC_MAX_ERROR, CODEC_MEAN_ERROR = 12, 2.0  # as test_lerobot.py


def two_camera_episode(e, T, success):
    scene = smooth_episode(e, T, success, shape=(32, 32))
    wrist = np.ascontiguousarray(scene.images[:, ::-1])  # another view: the scene upside down
    return EpisodeData(instruction=scene.instruction, images=np.stack([scene.images, wrist], axis=1),
                       actions=scene.actions, success=success, action_names=scene.action_names, states=scene.states,
                       state_names=["hand_x", "hand_y", "hand_z"], episode_id=scene.episode_id, end_reason=scene.end_reason,
                       embodiment=two_camera_robot())


def two_camera_robot() -> dict:
    from qt_policy.paths import resolve_data_path
    from qt_policy.robot.embodiment import CameraSpec, load_embodiment

    robot = load_embodiment(resolve_data_path("config/embodiments/metaworld_sawyer.yaml"))
    robot.cameras = [CameraSpec("scene", "camera/image_raw"), CameraSpec("wrist", "camera_1/image_raw")]
    robot.state.joints = robot.state.joints[:3]
    return robot.to_dict()


def test_two_camera_episodes_export_and_import_with_every_camera(tmp_path):
    eps = [two_camera_episode(e, T, ok) for e, (T, ok) in enumerate([(10, True), (8, False)])]
    for e, ep in enumerate(eps):
        write_episode_bag(tmp_path / "bags", ep, start_time_ns=10**18 + e * 10**10)
    summary = export_bags(tmp_path / "bags", tmp_path / "lerobot", progress=False)
    assert summary["exported"] == 2 and not summary["skipped"]
    info = json.loads((tmp_path / "lerobot" / "meta" / "info.json").read_text())
    assert [k for k, f in info["features"].items() if f["dtype"] == "video"] == \
        ["observation.images.scene", "observation.images.wrist"]  # the embodiment's camera names
    r = doctor(tmp_path / "lerobot")
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-2000:]
    back = [ep for _, ep in read_lerobot_episodes(tmp_path / "lerobot")]
    for got, ep in zip(back, eps):
        assert got.num_cameras == 2 and got.images.shape == ep.images.shape
        err = np.abs(got.images.astype(int) - ep.images)
        assert err.max() <= CODEC_MAX_ERROR and err.mean() <= CODEC_MEAN_ERROR
        np.testing.assert_array_equal(got.actions, ep.actions)
    only_wrist = [ep for _, ep in read_lerobot_episodes(tmp_path / "lerobot", camera="wrist")]
    np.testing.assert_array_equal(only_wrist[0].images, back[0].camera(1))


def test_a_moved_dataset_keeps_its_episode_ids(tmp_path):
    for e, (T, ok) in enumerate([(6, True), (5, False)]):
        write_episode_bag(tmp_path / "bags", smooth_episode(e, T, ok, shape=(32, 32)), start_time_ns=10**18 + e * 10**10)
    export_bags(tmp_path / "bags", tmp_path / "a", progress=False)
    ids = [source for source, _ in read_lerobot_episodes(tmp_path / "a")]
    assert len(set(ids)) == 2 and not any(str(tmp_path) in i for i in ids)  # no path in them
    shutil.copytree(tmp_path / "a", tmp_path / "moved")
    assert [source for source, _ in read_lerobot_episodes(tmp_path / "moved")] == ids
    assert convert_bags(tmp_path / "a", tmp_path / "shards", progress=False)["converted"] == 2
    assert convert_bags(tmp_path / "moved", tmp_path / "shards", progress=False)["converted"] == 0


@pytest.fixture
def reference(tmp_path):
    if not REFERENCE.is_dir():
        pytest.skip(f"no reference dataset at {REFERENCE}")
    return REFERENCE


def test_a_span_is_decoded_by_seeking_and_equals_the_whole_files_frames(reference):
    import pyarrow.parquet as pq

    rows = pq.read_table(next((reference / "meta" / "episodes").rglob("*.parquet"))).to_pylist()
    key = "observation.images.front"
    video = next((reference / "videos" / key).rglob("*.mp4"))
    assert len({(r[f"videos/{key}/chunk_index"], r[f"videos/{key}/file_index"]) for r in rows}) == 1  # one file
    total = sum(r["length"] for r in rows)
    whole = decode_video(video, 0.0, total / 10, 10)
    assert len(whole) == total
    for r in rows:  # LeRobot's writer put the three episodes one after another in that file
        lo, hi = r[f"videos/{key}/from_timestamp"], r[f"videos/{key}/to_timestamp"]
        span = decode_video(video, lo, hi, 10)
        np.testing.assert_array_equal(span, whole[round(lo * 10): round(hi * 10)])


def test_the_reference_imports_with_both_cameras(reference, tmp_path):
    with pytest.raises(LeRobotFormatError, match="--image-size"):  # front 64x64, wrist 48x64
        next(read_lerobot_episodes(reference))
    both = [ep for _, ep in read_lerobot_episodes(reference, image_size=32)]
    wrist = [ep for _, ep in read_lerobot_episodes(reference, camera="wrist")]
    assert [ep.images.shape for ep in both] == [(12, 2, 32, 32, 3), (15, 2, 32, 32, 3), (9, 2, 32, 32, 3)]
    for b, w in zip(both, wrist):
        np.testing.assert_array_equal(b.camera(1), prepare_frames(w.images, 32))
    data = tmp_path / "reference"
    shutil.copytree(reference, data)
    manifest = convert_bags(data, tmp_path / "shards", image_size=32, progress=False)
    assert manifest["converted"] == 3 and {lay["cameras"] for lay in manifest["layouts"].values()} == {2}
    assert [e["images"].shape[1] for e in read_all(tmp_path / "shards", manifest)] == [2, 2, 2]
