"""qt_policy: Q-Transformer offline RL policy for robot arms, with ROS 2 nodes.

Layout (core/ imports nothing of the rest; only nodes/, dev/ and the through-ROS evaluation use ROS):
  core/        the method in plain PyTorch: model, losses, learner, greedy decoding, checkpoints
  data/        episodes: rosbag2 bags, the training shards and their sampler, LeRobot datasets, the observation pipeline
  robot/       embodiment files, command maps, safety limits, teleop step windows (no ROS)
  sim/         the simulated arm (Meta-World), its tasks, scripted experts and its episode driver
  training/    fit(): a training run into a run folder
  evaluation/  rollouts on the simulated arm, the same episodes through ROS (started by dev/), success intervals
  runtime/     what the nodes do, without ROS: the policy runner, the episode recorder, parameters
  nodes/       the ROS 2 nodes: thin adapters around runtime/ and sim/
  tools/       the product CLIs (qt-train, qt-evaluate, qt-import-bags, ...)
  research/    baselines, diagnostics, plots, parity checks, ensembles
  dev/         the demo and the launch-file runner for machines without launch_ros
  paths.py     where models/, config/ and launch/ are found (source checkout or install)
"""
