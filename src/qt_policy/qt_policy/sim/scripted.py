"""Scripted data-collection policies, in the Q-Transformer paper's style: experts and failure makers.

Offline RL needs both successes and failures. Meta-World's scripted experts are feedback
controllers, so Gaussian noise alone hardly ever makes them fail; failures here come from the
perturbations measured to work (see the Meta-World notes):

  expert       Meta-World's scripted policy plus N(0, sigma) action noise (succeeds ~100 %).
  held_random  the expert, but most of the time a uniform random action held for several steps.
  wrong_task   the expert of another task in this scene (the opposite instruction where there is
               one: closing when asked to open), so the episode shows purposeful but wrong motion.
  offset_goal  the expert steered by an object/goal position shifted by a few cm: it reaches for
               the wrong spot, and sometimes still succeeds.
  random       uniform random actions.

Each policy is built from (task, rng) and maps the raw Meta-World obs to a 4-D action in [-1, 1];
all randomness comes from the given generator, so an episode is reproducible from its seed.
"""
from __future__ import annotations

import warnings
from typing import Protocol

import numpy as np

from .tasks import OPPOSITE_TASK, TASKS, SimTask

# The experts' proportional gains trip a UserWarning on every call; the env clips anyway.
warnings.filterwarnings("ignore", message=r"Constant\(s\) may be too high", category=UserWarning)

FAILURE_KINDS = ("held_random", "wrong_task", "offset_goal", "random")
#: demonstrators: the fast scripted expert, and a slower, hesitating one (as a person teleoperating)
DEMO_KINDS = ("expert", "slow_expert")
#: issue 37's failures: the fast expert in pieces of 20 steps between held random actions (p 0.9): 0 of 24
#: succeeded within 400 steps on its three tasks (2026-12-07, docs/experiments/beyond-demos.md)
BENCHMARK_FAILURE_KINDS = ("interrupted_expert",)
POLICY_KINDS = DEMO_KINDS + FAILURE_KINDS + BENCHMARK_FAILURE_KINDS

# Mix of failure makers for "noisy" episodes, tuned on 40-60 seeds per task so that noisy episodes
# succeed ~0-15 % per task, ~7 % on average (measured per kind: wrong_task ~3 %, held_random
# ~3 %, offset_goal ~10-70 % depending on the task, random ~0 % except drawer-close).
NOISY_KIND_WEIGHTS: dict[str, float] = {
    "held_random": 0.35,
    "wrong_task": 0.4,
    "offset_goal": 0.15,
    "random": 0.1,
}
# drawer-close is easy by accident (random pushes shut the drawer: held_random 4/12, offset_goal
# 7/11 succeeded), so its noisy episodes lean on the wrong-task expert instead.
NOISY_KIND_WEIGHTS_BY_TASK: dict[str, dict[str, float]] = {
    "drawer-close": {"held_random": 0.2, "wrong_task": 0.6, "offset_goal": 0.1, "random": 0.1},
}

# Whose expert a "wrong_task" episode runs. The opposite instruction in the same scene where that
# fails; measured exception: the window-close expert, run on a closed window, opens it (6/6), so
# window-open gets the drawer-close expert (0/6), as does the button (no opposite task).
WRONG_TASK: dict[str, str] = {
    "drawer-open": "drawer-close",
    "drawer-close": "drawer-open",
    "window-open": "drawer-close",
    "window-close": "window-open",
    "faucet-open": "faucet-close",
    "faucet-close": "faucet-open",
    "button-press-topdown": "drawer-close",
}

EXPERT_NOISE = 0.1  # sigma of the Gaussian action noise on expert actions


class CollectionPolicy(Protocol):
    """A data-collection policy for one episode: `act(raw_obs) -> the arm's action, float32 in [-1, 1]`
    ((4,) here, (7,) for the Panda's policies in sim/panda/scripted.py)."""

    kind: str

    def act(self, raw_obs: np.ndarray) -> np.ndarray: ...


def _scripted(env_name: str):
    from metaworld.policies import ENV_POLICY_MAP

    return ENV_POLICY_MAP[env_name]()


def clip_unit(a) -> np.ndarray:
    """An action as float32 in [-1, 1] (every arm's action range)."""
    return np.clip(np.asarray(a, dtype=np.float32), -1.0, 1.0)


class ExpertPolicy:
    """Meta-World's scripted expert for the task, plus small Gaussian action noise."""

    kind = "expert"

    def __init__(self, task: SimTask, rng: np.random.Generator, noise: float = EXPERT_NOISE,
                 expert_task: SimTask | None = None):
        self.task = task
        self.rng = rng
        self.noise = float(noise)
        self._expert = _scripted((expert_task or task).env_name)

    def act(self, raw_obs: np.ndarray) -> np.ndarray:
        a = np.asarray(self._expert.get_action(raw_obs), dtype=np.float64)
        if self.noise > 0:
            a = a + self.rng.normal(0.0, self.noise, size=a.shape)
        return clip_unit(a)


class HeldRandom:
    """An expert, interrupted: every `hold` steps, with probability `p_random`, a uniform random
    action is chosen and held for the next `hold` steps (otherwise the expert acts for them).

    With p_random .8 and hold 10 the expert rarely gets enough consecutive steps to finish; the
    random segments move the hand far, so the data covers states off the expert's path. Any arm:
    `expert` is its expert policy, `action_dim` its action size.
    """

    kind = "held_random"

    def __init__(self, expert: CollectionPolicy, rng: np.random.Generator, action_dim: int,
                 p_random: float = 0.8, hold: int = 10, kind: str = "held_random"):
        self.rng, self.action_dim, self.kind = rng, int(action_dim), kind
        self.p_random = float(p_random)
        self.hold = int(hold)
        self._expert = expert
        self._t = 0
        self._held: np.ndarray | None = None

    def act(self, raw_obs: np.ndarray) -> np.ndarray:
        if self._t % self.hold == 0:
            self._held = (self.rng.uniform(-1.0, 1.0, size=self.action_dim).astype(np.float32)
                          if self.rng.random() < self.p_random else None)
        self._t += 1
        return self._held.copy() if self._held is not None else self._expert.act(raw_obs)


class WrongTaskPolicy:
    """The expert of another task run in this task's scene (WRONG_TASK; for a task not listed
    there, the opposite task if any, else a random other registered task). It moves with purpose
    to the object and does the wrong thing with it."""

    kind = "wrong_task"

    def __init__(self, task: SimTask, rng: np.random.Generator):
        other = WRONG_TASK.get(task.name) or OPPOSITE_TASK.get(task.name)
        if other is None:
            others = sorted(n for n in TASKS if n != task.name)
            other = others[int(rng.integers(len(others)))]
        self.other_task = TASKS[other]
        self._expert = ExpertPolicy(task, rng, expert_task=self.other_task)

    def act(self, raw_obs: np.ndarray) -> np.ndarray:
        return self._expert.act(raw_obs)


def horizontal_shift(rng: np.random.Generator, distance_range: tuple[float, float]) -> np.ndarray:
    """An xy shift in a random direction, its length uniform in `distance_range` m (z: 0)."""
    angle = rng.uniform(0.0, 2.0 * np.pi)
    dist = rng.uniform(*distance_range)
    return dist * np.array([np.cos(angle), np.sin(angle), 0.0])


class OffsetGoalPolicy:
    """The expert, told the object and goal are shifted horizontally (random direction, distance
    uniform in `offset_range` m, fixed for the episode): it grasps/pushes the wrong spot. Small
    shifts still succeed now and then (near misses), large ones fail (4 cm: 0-5 of 6 seeds succeed,
    10 cm: 0-2 of 6, depending on the task)."""

    kind = "offset_goal"

    def __init__(self, task: SimTask, rng: np.random.Generator,
                 offset_range: tuple[float, float] = (0.03, 0.10)):
        self.shift = horizontal_shift(rng, offset_range)
        self._expert = ExpertPolicy(task, rng)

    def act(self, raw_obs: np.ndarray) -> np.ndarray:
        obs = np.array(raw_obs, dtype=np.float64, copy=True)
        obs[4:7] += self.shift  # first object position
        obs[-3:] += self.shift  # goal position
        return self._expert.act(obs)


class SlowExpert:
    """An expert as a person at a teleoperation device might be: slower (every dimension but the
    gripper scaled by `speed`) and hesitating (with probability `p_pause` a step starts a stop of
    `pause` steps: no motion, the gripper as the expert sets it). The expert still decides each step
    from the scene, so it gets there, only later: demonstrations a policy can beat in speed
    (issue 37's benchmark). Any arm: the gripper is the last dimension."""

    kind = "slow_expert"

    def __init__(self, expert: CollectionPolicy, rng: np.random.Generator, speed: float = 0.4,
                 p_pause: float = 0.05, pause: int = 4):
        self._expert, self.rng = expert, rng
        self.speed, self.p_pause, self.pause = float(speed), float(p_pause), int(pause)
        self._paused = 0

    def act(self, raw_obs: np.ndarray) -> np.ndarray:
        a = np.array(self._expert.act(raw_obs), dtype=np.float32, copy=True)
        if self._paused == 0 and self.rng.random() < self.p_pause:
            self._paused = self.pause
        if self._paused > 0:
            self._paused -= 1
            a[:-1] = 0.0
        else:
            a[:-1] *= self.speed
        return a


class UniformRandom:
    """Uniform random actions in [-1, 1]^action_dim (any arm)."""

    kind = "random"

    def __init__(self, rng: np.random.Generator, action_dim: int):
        self.rng, self.action_dim = rng, int(action_dim)

    def act(self, raw_obs: np.ndarray) -> np.ndarray:
        return self.rng.uniform(-1.0, 1.0, size=self.action_dim).astype(np.float32)


_POLICIES = {  # kind -> (task, rng) -> policy; the Sawyer's actions are 4-D
    "expert": ExpertPolicy,
    "slow_expert": lambda task, rng: SlowExpert(ExpertPolicy(task, rng), rng),
    "held_random": lambda task, rng: HeldRandom(ExpertPolicy(task, rng), rng, 4),
    "wrong_task": WrongTaskPolicy,
    "offset_goal": OffsetGoalPolicy,
    "random": lambda task, rng: UniformRandom(rng, 4),
    "interrupted_expert": lambda task, rng: HeldRandom(ExpertPolicy(task, rng), rng, 4, p_random=0.9, hold=20,
                                                       kind="interrupted_expert"),
}


def build_policy(policies: dict, kind: str, task: SimTask, rng: np.random.Generator) -> CollectionPolicy:
    """A fresh policy of `kind` from a simulator's table of policy classes (this module's, sim/panda's)."""
    try:
        make = policies[kind]
    except KeyError:
        raise ValueError(f"unknown policy kind {kind!r}; known: {list(policies)}") from None
    return make(task, rng)


def draw_policy_kind(mode: str, rng: np.random.Generator, weights: dict[str, float]) -> str:
    """The policy kind for an episode of collection `mode`: "expert" -> "expert"; "noisy" -> a
    failure maker drawn with `weights` (one draw from `rng`, so the episode's later draws are fixed)."""
    if mode == "expert":
        return "expert"
    if mode == "noisy":
        kinds = list(weights)
        p = np.array([weights[k] for k in kinds], dtype=np.float64)
        return kinds[int(rng.choice(len(kinds), p=p / p.sum()))]
    raise ValueError(f"unknown collection mode {mode!r}; use 'expert' or 'noisy'")


def make_collection_policy(kind: str, task: SimTask, rng: np.random.Generator) -> CollectionPolicy:
    """A fresh policy of `kind` (one of POLICY_KINDS) for one episode of `task`."""
    return build_policy(_POLICIES, kind, task, rng)


def sample_policy_kind(mode: str, rng: np.random.Generator, task_name: str | None = None) -> str:
    """The kind for `mode`, with the task's NOISY_KIND_WEIGHTS_BY_TASK entry or NOISY_KIND_WEIGHTS."""
    return draw_policy_kind(mode, rng, NOISY_KIND_WEIGHTS_BY_TASK.get(task_name or "", NOISY_KIND_WEIGHTS))
