"""robosuite's Panda as a second simulated arm: 7-D end-effector control (position, rotation,
gripper) and two cameras (scene + wrist). Same interface as the Meta-World arm (sim/arm.py)."""
