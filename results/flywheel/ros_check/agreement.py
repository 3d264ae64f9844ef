"""Per placement: the label a flywheel run recorded (its harness collection) against the harness and
the ROS loop re-running the same policy on the same placements (the qt-evaluate JSONs beside this file).

    python results/flywheel/ros_check/agreement.py runs/flywheel/qt 1 > results/flywheel/ros_check/agreement.txt
"""
import json
import sys
from pathlib import Path

from qt_policy.data.bag_io import read_episode_bag
from qt_policy.flywheel.collection import collected_name

run, round_index = Path(sys.argv[1]), int(sys.argv[2])
here = Path(__file__).parent
harness, ros = (json.loads((here / f"{name}.json").read_text()) for name in ("harness", "ros"))
same = total = 0
for task, row in harness["tasks"].items():
    seeds = range(harness["seed_start"], harness["seed_start"] + harness["episodes_per_task"])
    recorded = [bool(read_episode_bag(run / "bags" / collected_name(round_index, task, s)).success) for s in seeds]
    print(task, "flywheel bags", recorded, "harness", row["per_episode"], "ROS", ros["tasks"][task]["per_episode"])
    same += sum(a == b == c for a, b, c in zip(recorded, row["per_episode"], ros["tasks"][task]["per_episode"]))
    total += len(recorded)
print(f"{same}/{total} placements: the flywheel's recorded label, the harness and the ROS loop agree")
