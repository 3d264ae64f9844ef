"""The simulator as a robot: a Meta-World v3 Sawyer with one RGB camera, reproducible from a seed.

`SimArm.reset(task_name, seed)` places the task's object and goal at random (drawn from `seed`
only), `step(action)` moves the hand by up to 1 cm per axis and sets the gripper effort, and each
observation carries a rendered image, the 4-D robot state and the full Meta-World obs vector (for
scripted policies). The arm knows nothing of ROS or of episodes: the caller decides when to stop.
"""
from __future__ import annotations

import atexit
import os
import weakref
from dataclasses import dataclass
from typing import Union

import numpy as np

from .tasks import get_task

# Headless by default (MuJoCo reads this once, when mujoco.gl_context is first imported); set
# MUJOCO_GL=glfw/osmesa before importing this module to override.
os.environ.setdefault("MUJOCO_GL", "egl")

ACTION_NAMES = ["dx", "dy", "dz", "gripper"]
STATE_NAMES = ["hand_x", "hand_y", "hand_z", "gripper_opening"]
ACTION_LOW = -1.0
ACTION_HIGH = 1.0


@dataclass(frozen=True)
class FreeCamera:
    """A free (orbiting) MuJoCo camera: look at `lookat` from `distance` m, angles in degrees.

    The default frames the whole workspace at 64 px, checked on contact sheets with every task's
    object at both corners of its placement range, at the start, mid-episode and at success: the
    hand's start pose (left edge), the window slid fully open and the hand above the button all
    stay in the image. The notes' camera (lookat (0, .72, .12), distance .95, azimuth 150,
    elevation -32) cut off the button box and the window at the far-right placements.
    """

    lookat: tuple[float, float, float] = (0.03, 0.70, 0.10)
    distance: float = 1.0
    azimuth: float = 135.0
    elevation: float = -38.0


DEFAULT_CAMERA = FreeCamera()


def checked_action(action, names, low, high) -> np.ndarray:
    """The action an arm executes: float32, one entry per name, each clipped to [low, high]; a wrong
    size or NaN/inf is rejected (ValueError)."""
    a = np.asarray(action, dtype=np.float32).reshape(-1)
    if a.shape != (len(names),):
        raise ValueError(f"action must have {len(names)} entries {names}, got shape {a.shape}")
    if not np.all(np.isfinite(a)):
        raise ValueError(f"action must be finite, got {a}")
    return np.clip(a, low, high)


def clip_action(action) -> np.ndarray:
    """The Sawyer's action: float32 (4,) in [-1, 1] (checked_action)."""
    return checked_action(action, ACTION_NAMES, ACTION_LOW, ACTION_HIGH)


@dataclass
class SimObservation:
    """What the arm sees after a reset or a step.

    image: (H, W, 3) uint8 RGB, row 0 at the top. state: float32 (4,) hand xyz (m) and gripper
    opening (0 closed .. 1 open), i.e. raw_obs[:4]. raw_obs: the full 39-D Meta-World observation
    (hand, gripper, object poses, previous frame, goal) for scripted policies only.
    success: the task's success test on this state. step: steps taken since the reset.
    images: every camera's image, in the embodiment's camera order (image is the first); an arm
    with one camera may leave it empty.
    """

    image: np.ndarray
    state: np.ndarray
    raw_obs: np.ndarray
    success: bool
    step: int
    images: tuple = ()

    @property
    def camera_images(self) -> tuple:
        """All cameras' images, first camera first (one camera: (image,))."""
        return tuple(self.images) if self.images else (self.image,)


def make_env(env_name: str):
    """A Meta-World v3 env that draws a new object/goal placement at each reset from its own seed.

    Meta-World's own constructors (benchmarks, `set_task`) freeze one placement per task; these
    flags, set as the measured notes say, make `seed(s)` then `reset()` give placement `s`:
    fully observable (the goal is in the obs; the cached observation space, built while partially
    observable, must be deleted, otherwise `step()` clips the goal to 0 and every scripted policy
    fails), the task counted as set, the random vector unfrozen and drawn from the env's seeded RNG.
    `max_path_length` (500, past which `step()` raises) is lifted: the caller bounds episodes.
    """
    import metaworld.env_dict  # heavy import (MuJoCo models); only when an arm is used

    try:
        cls = metaworld.env_dict.ALL_V3_ENVIRONMENTS[env_name]
    except KeyError:
        raise KeyError(f"unknown Meta-World v3 env {env_name!r}") from None
    env = cls()
    env._partially_observable = False
    env.__dict__.pop("sawyer_observation_space", None)  # functools.cached_property cache
    env._set_task_called = True
    env._freeze_rand_vec = False
    env.seeded_rand_vec = True
    env.max_path_length = 1 << 30
    return env


_LIVE_ARMS: "weakref.WeakSet[SimArm]" = weakref.WeakSet()
_ATEXIT_REGISTERED = False


def _close_live_arms() -> None:
    """Free the arms' GL contexts at exit, before EGL shuts down and before interpreter teardown
    (either way freeing them later prints a screenful of EGLError tracebacks)."""
    for arm in list(_LIVE_ARMS):
        arm.close()


def _register_close_at_exit() -> None:
    # MuJoCo registers eglTerminate at exit when it creates its first GL context; atexit runs
    # last-registered first, so ours must be registered after that context exists.
    global _ATEXIT_REGISTERED
    if not _ATEXIT_REGISTERED:
        atexit.register(_close_live_arms)
        _ATEXIT_REGISTERED = True


def fast_renderer(model, size: int, exact_buffer: bool):
    """A headless `mujoco.Renderer` (size x size) tuned for speed, and the scene option that hides sites.

    No multisampling (`offsamples = 0`, set before the GL buffers exist); shadows, reflections and
    skybox off. The offscreen buffer is made exactly the image size (`exact_buffer`) or only grown
    to fit it. Sites (goal and target markers, frames) are hidden: debugging aids a real camera would
    not see. Both simulated arms' cameras are made here (sim/panda/arm.py).
    """
    import mujoco

    model.vis.quality.offsamples = 0
    if exact_buffer:
        model.vis.global_.offwidth = model.vis.global_.offheight = size
    else:
        model.vis.global_.offwidth = max(model.vis.global_.offwidth, size)
        model.vis.global_.offheight = max(model.vis.global_.offheight, size)
    renderer = mujoco.Renderer(model, size, size)
    _register_close_at_exit()
    for flag in (mujoco.mjtRndFlag.mjRND_SHADOW, mujoco.mjtRndFlag.mjRND_REFLECTION,
                 mujoco.mjtRndFlag.mjRND_SKYBOX):
        renderer.scene.flags[flag] = 0
    option = mujoco.MjvOption()
    option.sitegroup[:] = 0
    return renderer, option


class _Renderer:
    """A fast headless camera on one MuJoCo model.

    Meta-World's `env.render()` takes ~75 ms a frame (4096 shadow map, MSAA, reflections); the
    `fast_renderer` above takes 6-10 ms. Hiding the sites also hides the goal marker, which would
    give the task away without the instruction. `mujoco.Renderer.render()` already flips OpenGL's
    bottom-up rows (checked on contact sheets: table at the bottom), so no extra flip is done here.
    """

    def __init__(self, model, size: int, camera: Union[FreeCamera, str]):
        import mujoco

        self.renderer, self.option = fast_renderer(model, size, exact_buffer=False)
        if isinstance(camera, FreeCamera):
            cam = mujoco.MjvCamera()
            cam.type = mujoco.mjtCamera.mjCAMERA_FREE
            cam.lookat[:] = camera.lookat
            cam.distance = camera.distance
            cam.azimuth = camera.azimuth
            cam.elevation = camera.elevation
            self.camera = cam
        else:  # a camera named in the MJCF, e.g. "corner"
            self.camera = camera

    def render(self, data) -> np.ndarray:
        self.renderer.update_scene(data, camera=self.camera, scene_option=self.option)
        return self.renderer.render().copy()

    def close(self) -> None:
        if self.renderer is not None:
            self.renderer.close()
            self.renderer = None


class ArmBase:
    """What every simulated arm keeps alike: one (env, renderer) per task built on first use, the
    current task and observation, closing (also at exit) and the context manager. Subclasses build
    `_env(task)` and act (reset, step, render); sim/arms.py lists them."""

    def __init__(self, image_size: int):
        if image_size <= 0:
            raise ValueError("image_size must be positive")
        self.image_size = int(image_size)
        self._envs: dict[str, tuple[object, object]] = {}
        self._task_name: str | None = None
        self._obs: SimObservation | None = None
        _LIVE_ARMS.add(self)

    def close(self) -> None:
        """Free the renderers (GL contexts) and envs. The arm can be used again afterwards."""
        for env, renderer in self._envs.values():
            renderer.close()
            env.close()
        self._envs.clear()
        self._task_name = None
        self._obs = None

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @property
    def task_name(self) -> str | None:
        """The task of the current episode (None before the first reset)."""
        return self._task_name

    @property
    def observation(self) -> SimObservation:
        """The latest observation (from the last reset or step)."""
        if self._obs is None:
            raise RuntimeError(f"{type(self).__name__}.reset() has not been called")
        return self._obs


class SimArm(ArmBase):
    """Meta-World v3 Sawyer as a robot with one camera.

    One env (and its renderer) is built per task name on first use and reused for every later
    reset: construction takes ~0.3 s, a reset ~10 ms. Everything an episode does depends only on
    (task, seed, actions): `reset` reseeds the env, and MuJoCo's state is fully reset in between.
    Not thread-safe: use one arm per thread or process.
    """

    def __init__(self, image_size: int = 64, camera: Union[FreeCamera, str] = DEFAULT_CAMERA):
        super().__init__(image_size)
        self.camera = camera

    # -- lifecycle -------------------------------------------------------------------------------
    def _env(self, task_name: str):
        if task_name not in self._envs:
            task = get_task(task_name)
            env = make_env(task.env_name)
            self._envs[task_name] = (env, _Renderer(env.model, self.image_size, self.camera))
        return self._envs[task_name]

    # -- robot interface -------------------------------------------------------------------------
    action_names = ACTION_NAMES
    state_names = STATE_NAMES

    @staticmethod
    def clip_action(action) -> np.ndarray:
        """The action this arm executes (see the module's `clip_action`)."""
        return clip_action(action)

    def reset(self, task_name: str, seed: int) -> SimObservation:
        """Start an episode of `task_name` with the object/goal placement drawn from `seed`.

        The returned observation has step 0 and success False (no registered task starts solved).
        """
        env, _ = self._env(task_name)
        env.seed(int(seed))
        raw, _ = env.reset()
        self._task_name = task_name
        self._obs = self._observe(raw, success=False, step=0)
        return self._obs

    def step(self, action) -> tuple[SimObservation, bool]:
        """Execute `action` (clipped to [-1, 1]); return the new observation and whether it succeeds.

        Success is Meta-World's `info["success"]` for the new state. It need not persist (a door can
        swing back), so callers that want a sparse reward should stop at the first success.
        """
        if self._task_name is None:
            raise RuntimeError("SimArm.reset() has not been called")
        env, _ = self._envs[self._task_name]
        raw, _reward, _term, _trunc, info = env.step(clip_action(action))
        success = bool(info["success"])
        self._obs = self._observe(raw, success=success, step=self._obs.step + 1)
        return self._obs, success

    def render(self) -> np.ndarray:
        """A fresh image of the current state (same camera and size as the observations)."""
        if self._task_name is None:
            raise RuntimeError("SimArm.reset() has not been called")
        env, renderer = self._envs[self._task_name]
        return renderer.render(env.data)

    def _observe(self, raw: np.ndarray, success: bool, step: int) -> SimObservation:
        raw = np.asarray(raw, dtype=np.float64).copy()
        return SimObservation(
            image=self.render(),
            state=raw[:4].astype(np.float32),
            raw_obs=raw,
            success=success,
            step=step,
        )
