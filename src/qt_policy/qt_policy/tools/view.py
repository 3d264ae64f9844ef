"""Look at an episode in Rerun: camera frames, action values, chosen bins, greedy Q, and Q over all bins.

    qt-view data/recorded/episode_X --out episode.rrd [--checkpoint models/qt_metaworld]
    qt-view data/lerobot --episode 3 --out episode.rrd --png episode.png
    rerun episode.rrd          # the viewer (or https://app.rerun.io, drag the file in)

The source is an episode bag or a LeRobotDataset v3.0 folder (with --episode). Timeline `step`:
* `camera`: the frame the action of that step was decided from;
* `action/<dim>`: the executed action values; `bins/<dim>` and `q/greedy`: what the policy chose and its
  estimated success, as the bag recorded them (QAction) or, with --checkpoint, as that model decides
  on the same frames;
* `intervention`: 1 on the steps a person drove, taking over from the policy;
* with --checkpoint, `q_map/<dim>`: Q over every bin of that dimension, given the bins chosen before it
  (an image per step: where the policy was sure, where it hesitated) and `q_map/all`: all dimensions.
--png writes the same data as one picture (frames, greedy Q over time, the Q map of one dimension).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from ..evaluation.replay import decide_on_episode, load_episode


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="qt-view", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("source", type=Path, help="an episode bag folder, or a LeRobotDataset v3.0 folder (with --episode)")
    p.add_argument("--episode", type=int, default=0, help="episode index in a LeRobot folder (default 0)")
    p.add_argument("--checkpoint", type=Path, default=None,
                   help="model directory (a checkpoint, or an export from qt-export): decide on the episode's frames "
                        "as the node does; a checkpoint also logs Q over all bins")
    p.add_argument("--out", type=Path, default=Path("episode.rrd"), help="the Rerun recording to write (.rrd)")
    p.add_argument("--png", type=Path, default=None, help="also draw the episode as a picture (matplotlib)")
    p.add_argument("--png-dim", default=None, help="dimension whose Q map the picture shows (default: the first)")
    return p


def write_rrd(path: Path, ep, bins, q, q_maps) -> None:
    import rerun as rr

    names = list(ep.action_names) or [f"a{i}" for i in range(ep.actions.shape[1])]
    rec = rr.RecordingStream("qt_ros_episode")
    rec.save(str(path))
    rec.log("instruction", rr.TextDocument(f"{ep.instruction}\nsuccess: {ep.success}\nend: {ep.end_reason}"),
            static=True)
    for t in range(len(ep)):
        rec.set_time("step", sequence=t)
        rec.log("camera", rr.Image(ep.camera(0)[t]))
        for k in range(1, ep.num_cameras):
            rec.log(f"camera_{k}", rr.Image(ep.camera(k)[t]))
        for i, name in enumerate(names):
            rec.log(f"action/{name}", rr.Scalars(float(ep.actions[t, i])))
            if bins is not None:
                rec.log(f"bins/{name}", rr.Scalars(float(bins[t, i])))
            if q_maps is not None:
                rec.log(f"q_map/{name}", rr.Tensor(q_maps[t, i][None], dim_names=["dim", "bin"]))
        if q is not None and np.isfinite(q[t]):
            rec.log("q/greedy", rr.Scalars(float(q[t])))
        if q_maps is not None:
            rec.log("q_map/all", rr.Image((255 * q_maps[t]).astype(np.uint8)))
        rec.log("reward", rr.Scalars(float(ep.rewards[t])))
        if ep.interventions is not None:  # 1 where a person drove (took over from the policy)
            rec.log("intervention", rr.Scalars(float(ep.interventions[t])))
    rec.flush()


def draw_png(path: Path, ep, bins, q, q_maps, dim: str | None) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(ep.action_names) or [f"a{i}" for i in range(ep.actions.shape[1])]
    i = names.index(dim) if dim in names else 0
    T = len(ep)
    fig = plt.figure(figsize=(9, 6.4))
    grid = fig.add_gridspec(3, 5, height_ratios=[1.2, 1, 1.4])
    for k, t in enumerate(np.linspace(0, T - 1, 5).astype(int)):
        ax = fig.add_subplot(grid[0, k])
        ax.imshow(np.concatenate([ep.camera(k)[t] for k in range(ep.num_cameras)], axis=1))  # cameras side by side
        ax.set_title(f"step {t}", fontsize=8)
        ax.axis("off")
    ax = fig.add_subplot(grid[1, :])
    if q is not None:
        ax.plot(q, color="tab:green" if ep.success else "tab:red")
    ax.set_ylabel("greedy Q")
    ax.set_ylim(0, 1.02)
    ax.set_xlim(0, T - 1)
    ax.set_title(f"{ep.instruction!r}: {'success' if ep.success else 'failure'} after {T} steps", fontsize=9)
    ax = fig.add_subplot(grid[2, :])
    if q_maps is not None:
        im = ax.imshow(q_maps[:, i].T, origin="lower", aspect="auto", cmap="viridis", vmin=0, vmax=1,
                       extent=(-0.5, T - 0.5, -0.5, q_maps.shape[2] - 0.5))
        fig.colorbar(im, ax=ax, fraction=0.03, pad=0.01, label="Q")
        if bins is not None:
            ax.plot(bins[:, i], color="white", lw=0.8, label="chosen bin")
            ax.legend(loc="upper right", fontsize=7)
        ax.set_ylabel(f"{names[i]} bin")
    else:
        ax.plot(ep.actions[:, i])
        ax.set_ylabel(names[i])
    ax.set_xlabel("step")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    if not args.source.exists():
        print(f"error: {args.source} does not exist", file=sys.stderr)
        return 2
    ep, bins, q = load_episode(args.source, args.episode)
    q_maps = None
    if args.checkpoint is not None:
        from ..core.text import shared_encoder
        from ..inference import load_policy
        from ..inference.export_files import is_export

        policy = load_policy(args.checkpoint, backend="onnxruntime" if is_export(args.checkpoint) else "torch")
        bins, q, q_maps = decide_on_episode(policy, ep, shared_encoder())
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_rrd(args.out, ep, bins, q, q_maps)
    print(f"wrote {args.out} ({len(ep)} steps{', with Q maps' if q_maps is not None else ''}); open it with: "
          f"rerun {args.out}")
    if args.png:
        draw_png(args.png, ep, bins, q, q_maps, args.png_dim)
        print(f"wrote {args.png}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
