"""Do the recorder's intervention flags say what the person did? The scripted person (through the ROS
graph) writes, per episode, the frame it took over at and how many commands it sent; the recorder's bag
flags the steps. They agree when the flags start within a tick or two of the takeover, run to the end of
the episode, and count the person's commands (message timing may shift either by a tick or two)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

SLACK = 2  # ticks the operator's topic and the recorder's clock may disagree by


def flags_agree(flags: np.ndarray, person: dict, slack: int = SLACK) -> bool:
    """One episode: no flag when the person never took over (or took over within `slack` ticks of the
    episode's end, its few commands arriving after the last recorded step: they drove nothing); else none
    before its first command, every step from there to the end, starting at most `slack` ticks after the
    frame it took over at."""
    flags = np.asarray(flags, dtype=bool)
    if person.get("took_over_at") is None:
        return not flags.any()
    if not flags.any():
        return person["took_over_at"] >= len(flags) - slack and int(person["commands"]) <= slack
    first = int(np.argmax(flags))
    return bool(flags[first:].all() and person["took_over_at"] <= first <= person["took_over_at"] + slack
                and abs(int(flags.sum()) - int(person["commands"])) <= slack)


def check_takeover_record(bags: Path, record: Path) -> dict:
    """Pair the person's lines with the recorded bags (both in episode order) and count the agreements."""
    from ..data.bag_io import list_episode_bags, read_episode_bag

    people = [json.loads(line) for line in record.read_text().splitlines() if line.strip()] if record.is_file() else []
    episodes = [read_episode_bag(b) for b in list_episode_bags(bags)]
    rows = []
    for episode, person in zip(episodes, people):  # a recorded bag always holds the flags
        flags, same = episode.interventions, episode.instruction == person["instruction"]
        rows.append({"task": person["task"], "took_over_at": person["took_over_at"], "commands": person["commands"],
                     "flagged": episode.operator_steps, "first_flag": int(np.argmax(flags)) if flags.any() else None,
                     "same_instruction": same, "agree": same and flags_agree(flags, person)})
    return {"episodes": len(episodes), "person_lines": len(people),
            "takeovers": sum(p["took_over_at"] is not None for p in people),
            "agree": sum(r["agree"] for r in rows),
            "all_agree": len(episodes) == len(people) and all(r["agree"] for r in rows), "rows": rows}


def main(argv=None) -> int:
    import argparse

    p = argparse.ArgumentParser(prog="takeover_flags", description="Check a graph run's bags against the scripted "
                                "person's record: python -m qt_policy.evaluation.takeover_flags BAGS PERSON.jsonl")
    p.add_argument("bags", type=Path, help="the recorder's bag folder")
    p.add_argument("record", type=Path, help="the scripted person's JSON lines (record_path)")
    p.add_argument("--out", type=Path, default=None, help="write the check, every episode's row, as JSON")
    args = p.parse_args(argv)
    check = check_takeover_record(args.bags, args.record)
    print(f"{check['agree']} of {check['episodes']} bags agree with the person ({check['takeovers']} takeovers)")
    if args.out:
        args.out.write_text(json.dumps(check, indent=1))
    return 0 if check["all_agree"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
