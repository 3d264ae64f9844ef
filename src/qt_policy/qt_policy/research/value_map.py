"""Value maps on issue 37's slow demonstrations: what a checkpoint believes each state is worth.

    python -m qt_policy.research.value_map --data data/beyond_demos runs/beyond_demos/qt_s0/checkpoint \
        --out results/beyond_demos/value_map_s0.json --plot results/beyond_demos/value_map_s0.png

Along every step of every demonstration, per checkpoint:
  - V(s_t): the Q of the greedy action (decoded dimension by dimension, as the robot acts);
  - Q(s_t, demonstrated action);
  - the data's Monte-Carlo return (gamma^(T-1-t) on a success), the slow demonstrator's, which Q-T's lower
    bound lifts the demonstrated action to;
  - a reference for what is possible: gamma^(0.4 (T-1-t)), the same remaining path at the expert's speed.
A value near the slow return says the model believes nothing better is possible from there; a value above
it with a greedy action no faster than the demonstrations would say it believes and does not act. The action
gap, V - Q(demonstrated), is how much better than the demonstration the model thinks its own choice is.
With --online, the acting weights also score the online weights' greedy action: V minus that is the
max's selection bias, which a double-Q target (online weights choose, target weights score) would not carry.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

from .faster_actions import SLOW_SCALE, demonstration_episodes
from .results_file import write_json


@torch.no_grad()
def values_along(model, obs: dict, demo_bins: np.ndarray, chunk: int = 128) -> tuple[np.ndarray, np.ndarray]:
    """(V, Q of the demonstrated action) per step; V is the greedy decoded action's Q."""
    from ..core.decoding import decode_from_context

    v, q = [], []
    bins = torch.from_numpy(demo_bins)
    for i in range(0, len(demo_bins), chunk):
        part = slice(i, i + chunk)
        context = model.encode_context(*_rows(obs, part))
        v.append(decode_from_context(model, context).q_value)
        q.append(_q_of(model, context, bins[part]))
    return torch.cat(v).numpy(), torch.cat(q).numpy()


def _rows(obs: dict, part: slice) -> list:
    """(images, text, state) of the rows `part`, as encode_context takes them."""
    return [None if obs[k] is None else obs[k][part] for k in ("images", "text", "state")]


def _q_of(model, context: torch.Tensor, bins: torch.Tensor) -> torch.Tensor:
    """The Q of whole actions (B, d) in their last dimension: the action's value once every bin is chosen."""
    return model.q_values(context, bins)[:, -1].gather(-1, bins[:, -1:])[:, 0]


@torch.no_grad()
def cross_values(scorer, chooser, obs: dict, chunk: int = 128) -> np.ndarray:
    """Per step, `scorer`'s Q of the action `chooser` decodes greedily: with the averaged (target) weights as
    scorer and the online weights as chooser, the target double Q-learning would bootstrap from."""
    from ..core.decoding import decode_from_context

    out, n = [], len(next(v for v in obs.values() if v is not None))
    for i in range(0, n, chunk):
        rows = _rows(obs, slice(i, i + chunk))
        bins = decode_from_context(chooser, chooser.encode_context(*rows)).bins
        out.append(_q_of(scorer, scorer.encode_context(*rows), bins))
    return torch.cat(out).numpy()


def double_q_summary(v: np.ndarray, q_demo: np.ndarray, q_cross: np.ndarray, discount_n: float) -> dict:
    """How much of the action gap is the max's selection: V - Q(online's choice) would leave a double-Q
    target; what remains, Q(online's choice) - Q(demonstrated), sets that target's fixed point."""
    gap = float(np.mean(q_cross - q_demo))
    return {"q_of_online_choice": float(q_cross.mean()), "selection_gap_mean": float(np.mean(v - q_cross)),
            "double_q_action_gap_mean": gap, "double_q_gap_fixed_point": gap / (1.0 - discount_n),
            "online_choice_is_greedy_share": float(np.mean(np.isclose(q_cross, v, atol=1e-6)))}


def summarize(v: np.ndarray, q_demo: np.ndarray, mc: np.ndarray, fast: np.ndarray, ahead: np.ndarray,
              discount_n: float) -> dict:
    """The numbers a value map is read by, over all steps. `ahead[i]`: the row n steps later in the same
    episode (-1 past its end); `discount_n` = gamma^n. Where the rewards in between are 0 the n-step target of
    the demonstrated action is gamma^n V(s_t+n); if the greedy value exceeds the demonstrated action's Q by a
    gap g everywhere, V = Q + g and Q = gamma^n V settle at V = g / (1 - gamma^n) whatever the distance to
    the goal: the fixed point reported here."""
    gap = float(np.mean(v - q_demo))
    inside = ahead >= 0
    return {"steps": int(len(v)), "value": float(v.mean()), "q_demonstrated": float(q_demo.mean()),
            "mc_return_slow": float(mc.mean()), "return_at_expert_speed": float(fast.mean()),
            "value_minus_slow_return_mean": float(np.mean(v - mc)),
            "value_above_slow_return_share": float(np.mean(v > mc + 0.05)),
            "value_at_least_fast_return_share": float(np.mean(v >= fast - 0.05)),
            "action_gap_mean": gap,
            "q_demonstrated_where_bootstrapped": float(q_demo[inside].mean()) if inside.any() else float("nan"),
            "discounted_value_n_ahead": float(discount_n * v[ahead[inside]].mean()) if inside.any() else float("nan"),
            "gap_fixed_point": gap / (1.0 - discount_n)}


def plot(path: Path, maps: dict, names: list[str]) -> None:
    """One panel per demonstration drawn: the two returns and every checkpoint's V along it."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(maps), figsize=(4.2 * len(maps), 3.4), squeeze=False)
    for ax, (episode, m) in zip(axes[0], maps.items()):
        t = np.arange(len(m["mc"]))
        ax.plot(t, m["mc"], "k-", label="return, slow demonstrator (data)")
        ax.plot(t, m["fast"], "k:", label="return at the expert's speed")
        for name in names:
            ax.plot(t, m["v"][name], label=f"V, {name}")
        ax.set_title(episode, fontsize=9)
        ax.set_xlabel("step of the demonstration")
        ax.set_ylim(0, 1.05)
    axes[0][0].set_ylabel("value")
    axes[0][-1].legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="value_map", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("checkpoints", nargs="+", type=Path, help="Q-function checkpoints (the same image size)")
    p.add_argument("--data", type=Path, required=True, help="issue 37's bags (with generation.json)")
    p.add_argument("--threads", type=int, default=1, help="torch threads")
    p.add_argument("--out", type=Path, default=None, help="write the numbers as JSON")
    p.add_argument("--plot", type=Path, default=None, help="PNG: the first demonstration of each task")
    p.add_argument("--online", action="store_true",
                   help="also score the action the online weights (checkpoint_online/ beside each checkpoint) choose: "
                        "the part of the action gap a double-Q target would remove")
    args = p.parse_args(argv)
    from ..core.checkpoint import load_model, read_config
    from ..core.config import LossConfig
    from ..core.discretizer import make_discretizer
    from ..training.run_folder import ONLINE

    torch.set_num_threads(args.threads)
    names = [str(c) for c in args.checkpoints]
    models = {name: load_model(c).eval() for name, c in zip(names, args.checkpoints)}
    first = models[names[0]]
    loss = read_config(args.checkpoints[0])["loss"]
    gamma, n_step = float(loss["gamma"]), int(loss["n_step"])
    sampler, chosen = demonstration_episodes(args.data, first.cfg, LossConfig(gamma=gamma))
    disc = make_discretizer(first.cfg.action_low, first.cfg.action_high, first.cfg.num_bins)
    sizes = [len(sampler.episodes[i].arrays["actions"]) for i in chosen]
    ep_ids, lengths = np.repeat(chosen, sizes), np.repeat(sizes, sizes)  # every step, episode by episode
    steps = np.concatenate([np.arange(n) for n in sizes])
    mc = np.concatenate([sampler.episodes[i].mc for i in chosen]).astype(np.float64)  # the data's returns
    fast = np.asarray(gamma, np.float64) ** (SLOW_SCALE * (lengths - 1 - steps))
    ahead = np.where(steps + n_step < lengths, np.arange(len(steps)) + n_step, -1)  # rows are episode by episode
    obs = sampler.observation(ep_ids, steps)
    obs = {"images": obs.images, "text": obs.text, "state": obs.state}
    demo_bins = disc.to_bins(np.stack([sampler.episodes[i].arrays["actions"][t] for i, t in zip(ep_ids, steps)]))
    print(f"{len(chosen)} demonstrations, {len(steps)} steps, gamma {gamma}", flush=True)
    report = {"data": str(args.data), "gamma": gamma, "n_step": n_step, "demonstrations": len(chosen), "checkpoints": {}}
    drawn = {}
    for task in sorted({sampler.episodes[i].meta["task"] for i in chosen}):
        i = next(i for i in chosen if sampler.episodes[i].meta["task"] == task)
        drawn[sampler.episodes[i].meta["id"]] = {"rows": ep_ids == i, "v": {}}
    for name, model in models.items():
        v, q = values_along(model, obs, demo_bins)
        report["checkpoints"][name] = r = summarize(v, q, mc, fast, ahead, gamma ** n_step)
        if args.online:
            online = load_model(Path(name).parent / ONLINE).eval()
            r.update(double_q_summary(v, q, cross_values(model, online, obs), gamma ** n_step))
            print(f"{name}: Q of the online weights' choice {r['q_of_online_choice']:.3f} (V {r['value']:.3f}, "
                  f"Q demonstrated {r['q_demonstrated']:.3f}): a double-Q gap of {r['double_q_action_gap_mean']:+.3f}, "
                  f"fixed point {r['double_q_gap_fixed_point']:.3f}", flush=True)
        for m in drawn.values():
            m["v"][name] = v[m["rows"]]
        print(f"{name}: V {r['value']:.3f} (slow return {r['mc_return_slow']:.3f}, at the expert's speed "
              f"{r['return_at_expert_speed']:.3f}); V above the slow return in {r['value_above_slow_return_share']:.0%} "
              f"of the steps; action gap {r['action_gap_mean']:+.3f} (its fixed point {r['gap_fixed_point']:.3f}); "
              f"Q demonstrated {r['q_demonstrated_where_bootstrapped']:.3f} against gamma^n V n steps on "
              f"{r['discounted_value_n_ahead']:.3f}", flush=True)
    if args.out:
        write_json(args.out, report)
    if args.plot:
        plot(args.plot, {k: {**m, "mc": mc[m["rows"]], "fast": fast[m["rows"]]} for k, m in drawn.items()}, names)
    return 0


if __name__ == "__main__":
    sys.exit(main())
