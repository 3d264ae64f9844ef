"""Episodes -> tar shards: one shard set per converter process, rolled over at a size.

A `ShardSet` writes the episodes one process converts into its own shards (one open shard per
stream, successes and failures), each first as ``.tar.tmp`` and renamed when complete, so a killed
conversion leaves no half shard under a real name. It reports per shard what the manifest needs.
"""
from __future__ import annotations

import os
import tarfile
from pathlib import Path
from typing import Any

import numpy as np

from .episode import EpisodeData
from .observation import prepare_frames
from .shard_format import STREAMS, layout_key


def episode_layout(ep: EpisodeData, images: np.ndarray) -> dict[str, Any]:
    """The robot side of an episode: what the model's shape and the embodiment check read."""
    return {"action_names": list(ep.action_names), "state_names": list(ep.state_names),
            "image_shape": [int(x) for x in images.shape[-3:]], "cameras": ep.num_cameras,
            "has_states": ep.states is not None, "embodiment": ep.embodiment}


class ShardSet:
    """Rolling tar shards of one converter process, ``<stream>/<prefix>-<n>.tar``."""

    def __init__(self, out_dir: Path, prefix: str, image_size: int | None, shard_bytes: int):
        self.out_dir, self.prefix, self.image_size, self.shard_bytes = Path(out_dir), prefix, image_size, shard_bytes
        self.layouts: dict[str, dict] = {}
        self.closed: list[dict[str, Any]] = []
        self._open: dict[str, dict[str, Any]] = {}  # stream -> {writer, file, path, summary}
        self._count = {s: 0 for s in STREAMS}

    def add(self, ep: EpisodeData, seq: int, fingerprint: str) -> None:
        """Append one episode to its stream's shard (a new shard once the current one is full)."""
        images = prepare_frames(ep.images, self.image_size) if self.image_size else ep.images  # the node's rule
        layout = episode_layout(ep, images)
        key = layout_key(layout)
        self.layouts[key] = layout
        stream = STREAMS[0] if ep.success else STREAMS[1]
        shard = self._open.get(stream) or self._start(stream)
        person = ep.operator_steps
        meta = {"id": ep.episode_id, "fingerprint": fingerprint, "seq": int(seq), "instruction": ep.instruction,
                "task": ep.task, "success": bool(ep.success), "end_reason": ep.end_reason, "length": len(ep),
                "layout": key, "operator_steps": person}
        sample = {"__key__": f"{seq:010d}", "meta.json": meta,
                  "images.npy": np.ascontiguousarray(images, dtype=np.uint8),
                  "actions.npy": np.ascontiguousarray(ep.actions, dtype=np.float32),
                  "rewards.npy": ep.rewards.astype(np.float32)}
        if ep.states is not None:
            sample["states.npy"] = np.ascontiguousarray(ep.states, dtype=np.float32)
        if person:  # the steps a person drove
            sample["interventions.npy"] = np.asarray(ep.interventions, dtype=bool)
        shard["writer"].write(sample)
        summary = shard["summary"]
        summary["ids"].append(fingerprint)
        group = (ep.task, ep.instruction, bool(ep.success), key, person > 0)
        counts = summary["groups"].setdefault(group, [0, 0, 0])
        counts[0] += 1
        counts[1] += len(ep)
        counts[2] += person
        summary["episodes"] += 1
        summary["steps"] += len(ep)
        if shard["writer"].tarstream.offset >= self.shard_bytes:  # bytes written (the stream buffers 10 KB)
            self._finish(stream)

    def close(self) -> list[dict[str, Any]]:
        """Finish the open shards; every shard written, as the manifest lists it (instructions as text)."""
        for stream in list(self._open):
            self._finish(stream)
        return self.closed

    def abort(self) -> None:
        """Drop the unfinished shards (their episodes are not in any manifest and convert again)."""
        for shard in self._open.values():
            shard["file"].close()
            Path(shard["path"]).unlink(missing_ok=True)
        self._open.clear()

    def _start(self, stream: str) -> dict[str, Any]:
        import webdataset as wds

        name = f"{stream}/{self.prefix}-{self._count[stream]:04d}.tar"
        self._count[stream] += 1
        path = self.out_dir / (name + ".tmp")
        path.parent.mkdir(parents=True, exist_ok=True)
        f = open(path, "wb")
        writer = wds.TarWriter(f, mtime=0)  # fixed times: the same episodes make the same bytes
        # plain ustar headers: webdataset 1.0.2 picks USTAR_FORMAT but opens the tar with Python's default
        # (pax: two headers per member, which doubled the reading time of a shard)
        writer.tarstream.format = tarfile.USTAR_FORMAT
        shard = {"file": f, "writer": writer, "path": path, "name": name,
                 "summary": {"file": name, "success": stream == STREAMS[0], "episodes": 0, "steps": 0,
                             "ids": [], "groups": {}}}
        self._open[stream] = shard
        return shard

    def _finish(self, stream: str) -> None:
        shard = self._open.pop(stream)
        shard["writer"].close()  # closes the file too
        final = self.out_dir / shard["name"]
        with open(shard["path"], "rb") as f:
            os.fsync(f.fileno())
        os.replace(shard["path"], final)
        summary = shard["summary"]
        summary["bytes"] = final.stat().st_size
        summary["groups"] = [{"task": t, "instruction": i, "success": s, "layout": k, "episodes": n, "steps": m,
                              "operator_steps": o} for (t, i, s, k, _), (n, m, o) in summary["groups"].items()]
        self.closed.append(summary)
