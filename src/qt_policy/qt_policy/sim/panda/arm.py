"""robosuite's Panda as a robot: 7-D end-effector control, two RGB cameras, reproducible from a seed.

`PandaArm.reset(task_name, seed)` places the task's objects at random (drawn from `seed` only),
`step(action)` moves the hand by up to 5 cm per axis and turns it by up to 0.5 rad per axis
(axis-angle in the base frame; robosuite's OSC_POSE at 20 Hz) and sets the gripper (-1 open,
+1 closed). Those are the controller's goal deltas; the hand lags them: a held yaw of 1 turned it
0.21 rad in 4 steps, 0.46 in 8, and drifted it 4 then 7 cm sideways (the OSC goal is re-anchored
at the current pose every step, so drift is never corrected: the experts close the loop).
Each observation carries both cameras' images, the 8-D robot state and `raw_obs`, a
flat vector of privileged sim state for the scripted experts (layout: RAW_OBS_FIELDS).

Measured on 2 cores (Mesa llvmpipe, LP_NUM_THREADS=1), both 64x64 cameras on: a step takes
26-29 ms (lift 26, door 29, stack 26; env.step alone 5.5-6.6 ms, each camera ~10 ms), a reset
20-30 ms, building a task's env on first use 1.3-4 s.
"""
from __future__ import annotations

import logging
import os

import numpy as np

from ..arm import ArmBase, SimObservation, checked_action, fast_renderer
from ..tasks import PANDA_TASKS

os.environ.setdefault("MUJOCO_GL", "egl")

ACTION_NAMES = ["dx", "dy", "dz", "droll", "dpitch", "dyaw", "gripper"]
# Hand (grip site) position in the world frame (m); its rotation away from the top-down home
# orientation HOME_ROTATION as an axis-angle vector (rad, base frame: 0 at reset, smooth for turns
# below pi, unlike a quaternion of a hand pointing down, whose w sits at 0); finger joints (m,
# ~+-0.04 open, ~0 closed on nothing).
STATE_NAMES = ["eef_x", "eef_y", "eef_z", "eef_rot_x", "eef_rot_y", "eef_rot_z",
               "finger_left", "finger_right"]
ACTION_LOW = -1.0
ACTION_HIGH = 1.0

# The grip site's orientation at reset (gripper pointing down, fingers closing along world y).
HOME_ROTATION = np.array([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, -1.0]])

# raw_obs layout per task: (field, size) in order; rotation matrices are row-major 3x3 (world
# frame, columns = the body's axes). Common to all tasks: the hand and the fingers.
_COMMON = (("eef_pos", 3), ("eef_rot", 9), ("fingers", 2))
RAW_OBS_FIELDS: dict[str, tuple[tuple[str, int], ...]] = {
    "lift": _COMMON + (("cube_pos", 3), ("cube_rot", 9)),
    # the red cube (cubeA, 4 cm) and the green one (cubeB, 5 cm)
    "stack": _COMMON + (("red_pos", 3), ("red_rot", 9), ("green_pos", 3), ("green_rot", 9)),
    # handle: the lever's tip site; latch: the lever's pivot (it turns about the door normal);
    # hinge: the door's hinge anchor (vertical axis); door_rot: the panel's frame (its y axis is
    # the door normal, pointing away from the robot at reset); hinge/latch joint angles (rad).
    "door": _COMMON + (("handle_pos", 3), ("latch_pos", 3), ("hinge_pos", 3), ("door_rot", 9),
                       ("hinge_qpos", 1), ("latch_qpos", 1)),
}


def raw_fields(task_name: str, raw_obs) -> dict[str, np.ndarray]:
    """raw_obs split into its named fields (RAW_OBS_FIELDS[task_name]); rotations as 3x3."""
    raw = np.asarray(raw_obs, dtype=np.float64)
    fields, i = {}, 0
    for name, size in RAW_OBS_FIELDS[task_name]:
        v = raw[i:i + size]
        fields[name] = v.reshape(3, 3) if size == 9 else (v[0] if size == 1 else v)
        i += size
    if i != raw.size:
        raise ValueError(f"raw_obs of {task_name!r} must have {i} entries, got {raw.size}")
    return fields


def clip_action(action) -> np.ndarray:
    """The Panda's action: float32 (7,) in [-1, 1] (checked_action)."""
    return checked_action(action, ACTION_NAMES, ACTION_LOW, ACTION_HIGH)


def rotation_vector(rot: np.ndarray) -> np.ndarray:
    """Axis-angle vector (rad) of a rotation matrix (angle in [0, pi])."""
    cos = np.clip((np.trace(rot) - 1.0) / 2.0, -1.0, 1.0)
    angle = np.arccos(cos)
    axis = np.array([rot[2, 1] - rot[1, 2], rot[0, 2] - rot[2, 0], rot[1, 0] - rot[0, 1]])
    s = np.linalg.norm(axis)
    if s < 1e-9:
        if angle < 1e-6:
            return np.zeros(3)
        # angle ~ pi: the axis is the column of R + I with the largest norm
        m = rot + np.eye(3)
        axis = m[:, int(np.argmax(np.linalg.norm(m, axis=0)))]
        return angle * axis / np.linalg.norm(axis)
    return angle * axis / s


class _QuietImportFilter(logging.Filter):
    """Drops robosuite's known import-time notices (optional packages we do not use, its macro
    file, the controller file it loads); its other warnings and errors still show."""

    _NOISE = ("private macro file", "setup_macros.py", "robosuite_models", "mink-based",
              "Loading controller configuration")

    def filter(self, record: logging.LogRecord) -> bool:
        msg = record.getMessage()
        return not any(n in msg for n in self._NOISE)


def _robosuite():
    logging.getLogger("robosuite_logs").addFilter(_QuietImportFilter())
    import robosuite

    return robosuite


def make_env(env_name: str):
    """A robosuite env of the Panda with the OSC_POSE arm controller at 20 Hz, no own renderer.

    Only the arm's controller is kept (the BASIC composite config also lists torso/head/base/legs
    parts, which warn on every make and reset). `hard_reset=False`: a reset re-places the objects
    in the same model (20-70 ms instead of 2-3 s rebuilding it). `seed=0`: what robosuite draws
    when it builds the model (Lift's cube size, 2.0-2.2 cm) is the same in every env; its default
    (no seed) drew it from OS entropy, so each arm of the harness, each generator worker and the
    ROS sim arm had a cube of its own size and a Lift episode was not a function of (seed, actions).
    """
    suite = _robosuite()
    from robosuite.controllers import load_composite_controller_config

    config = load_composite_controller_config(controller="BASIC", robot="Panda")
    config["body_parts"] = {"right": config["body_parts"]["right"]}
    return suite.make(env_name, robots="Panda", controller_configs=config, has_renderer=False,
                      has_offscreen_renderer=False, use_camera_obs=False, use_object_obs=False,
                      control_freq=20, hard_reset=False, ignore_done=True, seed=0)


class _Renderer:
    """Several named MJCF cameras rendered through one headless `mujoco.Renderer`.

    `sim.arm.fast_renderer` with an offscreen buffer of the image size (64x64: 57 ms a frame by
    default, ~10 ms so, as the notes measured). Besides the sites (robosuite's gripper and target
    markers), the collision geoms (group 0) are hidden: drawn over the meshes by default.
    `mujoco.Renderer.render()` already flips OpenGL's bottom-up rows (robosuite's own `sim.render`
    does not: its frames come out upside down), so row 0 is the top (checked on
    results/panda_experts/contact_sheet.png).
    """

    def __init__(self, model, size: int, cameras: tuple[str, ...]):
        self.renderer, self.option = fast_renderer(model, size, exact_buffer=True)
        self.option.geomgroup[0] = 0  # robosuite's collision geoms (the robot would show as flat colours)
        self.cameras = tuple(cameras)

    def render(self, data) -> tuple[np.ndarray, ...]:
        images = []
        for camera in self.cameras:
            self.renderer.update_scene(data, camera=camera, scene_option=self.option)
            images.append(self.renderer.render().copy())
        return tuple(images)

    def close(self) -> None:
        if self.renderer is not None:
            self.renderer.close()
            self.renderer = None


class PandaArm(ArmBase):
    """robosuite's Panda as a robot with a scene and a wrist camera (same interface as sim.arm.SimArm).

    One env (and its renderer) is built per task on first use (~3 s) and reused: a reset takes
    20-70 ms. Everything an episode does depends only on (task, seed, actions): `reset` reseeds the
    env's generator, which the robot's start-pose noise and the object placement samplers draw
    from. Not thread-safe: use one arm per thread or process.
    """

    def __init__(self, image_size: int = 64, cameras: tuple[str, ...] = ("agentview", "robot0_eye_in_hand")):
        if not cameras:
            raise ValueError("at least one camera is needed")
        super().__init__(image_size)
        self.cameras = tuple(cameras)

    # -- lifecycle -------------------------------------------------------------------------------
    def _env(self, task_name: str):
        if task_name not in self._envs:
            try:
                task = PANDA_TASKS[task_name]
            except KeyError:
                raise KeyError(f"unknown Panda task {task_name!r}; known: {sorted(PANDA_TASKS)}") from None
            env = make_env(task.env_name)
            self._envs[task_name] = (env, _Renderer(env.sim.model._model, self.image_size, self.cameras))
        return self._envs[task_name]

    # -- robot interface -------------------------------------------------------------------------
    action_names = ACTION_NAMES
    state_names = STATE_NAMES
    embodiment_file = "config/embodiments/robosuite_panda.yaml"  # stored with its episodes (sim/collect.py)

    @staticmethod
    def clip_action(action) -> np.ndarray:
        """The action this arm executes (see the module's `clip_action`)."""
        return clip_action(action)

    def reset(self, task_name: str, seed: int) -> SimObservation:
        """Start an episode of `task_name` with the robot pose noise and object placement drawn from
        `seed`. The returned observation has step 0."""
        env, _ = self._env(task_name)
        # the placement samplers and the robot hold a reference to env.rng: reseed it in place
        env.rng.bit_generator.state = np.random.default_rng(int(seed)).bit_generator.state
        env.reset()
        self._task_name = task_name
        self._obs = self._observe(env, success=bool(env._check_success()), step=0)
        return self._obs

    def step(self, action) -> tuple[SimObservation, bool]:
        """Execute `action` (clipped to [-1, 1]); return the new observation and whether it succeeds
        (robosuite's `_check_success` on the new state; it need not persist)."""
        if self._task_name is None:
            raise RuntimeError("PandaArm.reset() has not been called")
        env, _ = self._envs[self._task_name]
        env.step(clip_action(action).astype(np.float64))
        success = bool(env._check_success())
        self._obs = self._observe(env, success=success, step=self._obs.step + 1)
        return self._obs, success

    def render(self) -> tuple[np.ndarray, ...]:
        """Fresh images of the current state, one per camera (in `cameras` order)."""
        if self._task_name is None:
            raise RuntimeError("PandaArm.reset() has not been called")
        env, renderer = self._envs[self._task_name]
        return renderer.render(env.sim.data._data)

    def _raw_obs(self, env) -> np.ndarray:
        sim, name = env.sim, self._task_name
        site = env.robots[0].eef_site_id["right"]
        parts = [sim.data.site_xpos[site], sim.data.site_xmat[site],
                 sim.data.qpos[env.robots[0]._ref_gripper_joint_pos_indexes["right"]]]

        def body(body_id):
            return [sim.data.body_xpos[body_id], sim.data.body_xmat[body_id]]

        if name == "lift":
            parts += body(env.cube_body_id)
        elif name == "stack":
            parts += body(env.cubeA_body_id) + body(env.cubeB_body_id)
        elif name == "door":
            model = sim.model
            hinge = model.joint_name2id(env.door.joints[0])
            door_body = model.body_name2id(env.door.door_body)
            parts += [sim.data.site_xpos[env.door_handle_site_id],
                      sim.data.body_xpos[env.object_body_ids["latch"]],
                      sim.data.xanchor[hinge], sim.data.body_xmat[door_body],
                      [sim.data.qpos[env.hinge_qpos_addr]], [sim.data.qpos[env.handle_qpos_addr]]]
        return np.concatenate([np.asarray(p, dtype=np.float64).reshape(-1) for p in parts])

    def _observe(self, env, success: bool, step: int) -> SimObservation:
        raw = self._raw_obs(env)
        rot = raw[3:12].reshape(3, 3)
        state = np.concatenate([raw[0:3], rotation_vector(rot @ HOME_ROTATION.T), raw[12:14]])
        images = self.render()
        return SimObservation(image=images[0], state=state.astype(np.float32), raw_obs=raw,
                              success=success, step=step, images=images)
