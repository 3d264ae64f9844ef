"""LeRobotDataset v3.0 out of episode bags, and back in as training data (pyarrow + PyAV, no lerobot).

Layout (LeRobot's `codebase_version` "v3.0"; the reader of `../shared/data/lerobot_v3_reference`,
written by LeRobot's own writer, is tested on it):

* ``meta/info.json``: fps, features (dtype, shape, names), path templates, totals;
* ``meta/stats.json``: per-feature min/max/mean/std/count and q01..q99 (images: per channel, in [0, 1]);
* ``meta/tasks.parquet``: the task strings (the instructions), indexed like a pandas frame;
* ``meta/episodes/chunk-XXX/file-XXX.parquet``: per episode its length, task, data rows and video span;
* ``data/chunk-XXX/file-XXX.parquet``: one row per step: ``observation.state``, ``action``,
  ``next.reward``, ``next.done``, ``next.success``, ``return_to_go`` (the Monte-Carlo return-to-go
  sum_k gamma^k next.reward[t+k], gamma in the feature's info, the lower bound Q-Transformer's targets
  use), ``timestamp``, ``frame_index``, ``episode_index``, ``index``, ``task_index``;
* ``videos/observation.images.<camera>/chunk-XXX/file-XXX.mp4``: AV1 (SVT-AV1), yuv420p, as LeRobot
  writes them; one file per episode here (the episode rows say which file and which span).

Export is incremental: each call appends the bags it has not exported yet (``meta/qt_ros_sources.json``
maps bag fingerprints to episodes) as one more data and episodes file. Step t of a bag (the t-th
action and the observation it was decided from) is frame t; reward 1 on the last step of a success.
"""
from .lerobot_export import export_bags
from .lerobot_format import CODEBASE_VERSION, LeRobotFormatError, is_lerobot_dataset, return_to_go
from .lerobot_import import read_lerobot_episodes
from .lerobot_video import decode_video, encode_video

__all__ = ["CODEBASE_VERSION", "LeRobotFormatError", "decode_video", "encode_video", "export_bags",
           "is_lerobot_dataset", "read_lerobot_episodes", "return_to_go"]
