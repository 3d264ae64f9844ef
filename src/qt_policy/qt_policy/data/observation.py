"""The one observation pipeline: camera message -> RGB (codec/images.py) -> model frame -> frame history.

Used by every path that turns camera frames into model input, so training, evaluation and the robot
can never disagree: the bag reader and the training shards (convert.convert_bags), the evaluation
rollouts (evaluation/rollout.py) and the policy node (runtime/policy_runner.py).

* `prepare_frame`: RGB -> the model's square input by the rule `CROP_RULES[...]` named in the
  checkpoint (ModelConfig.image_crop): "center" = the largest centred square, then INTER_AREA
  resize. A non-square camera is cropped, never squashed, in training and at run time alike.
* `frame_window` / `FrameHistory`: the last F decision frames, padded in front with the oldest; the
  sampler indexes the cached episodes with `frame_window`, and the node's history stacks by it too.
"""
from __future__ import annotations

import cv2
import numpy as np

from ..codec.images import ImageError

#: how a camera frame becomes the model's square input; the checkpoint names one (ModelConfig.image_crop)
CROP_RULES = ("center",)


def center_crop_square(rgb: np.ndarray) -> np.ndarray:
    """Largest centred square: the model was trained on square images, so crop rather than squash."""
    h, w = rgb.shape[:2]
    side = min(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    return rgb[top: top + side, left: left + side]


def prepare_frame(rgb: np.ndarray, size: int, crop: str = "center") -> np.ndarray:
    """(H, W, 3) uint8 RGB -> (size, size, 3): centre-crop to a square, then INTER_AREA resize
    (anti-aliased downscaling; a frame already square and of that size is returned as it is)."""
    if crop not in CROP_RULES:
        raise ValueError(f"unknown image crop rule {crop!r}; known: {CROP_RULES}")
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise ImageError(f"expected an (H, W, 3) uint8 image, got {rgb.shape} {rgb.dtype}")
    if rgb.shape[0] == 0 or rgb.shape[1] == 0:
        raise ImageError(f"empty image ({rgb.shape[1]}x{rgb.shape[0]})")
    square = center_crop_square(rgb)
    if square.shape[0] == size:
        return np.ascontiguousarray(square)
    return cv2.resize(square, (size, size), interpolation=cv2.INTER_AREA)


def prepare_frames(images: np.ndarray, size: int, crop: str = "center") -> np.ndarray:
    """(T, H, W, 3) -> (T, size, size, 3), each frame by `prepare_frame` (no copy when nothing changes);
    (T, K, H, W, 3) (K cameras) -> (T, K, size, size, 3)."""
    if images.ndim == 5:
        if images.shape[2:4] == (size, size):
            return images
        return np.stack([prepare_frames(images[:, k], size, crop) for k in range(images.shape[1])], axis=1)
    if images.shape[1:3] == (size, size):
        return images
    return np.stack([prepare_frame(img, size, crop) for img in images]) if len(images) else \
        np.zeros((0, size, size, 3), np.uint8)


def prepare_cameras(images, size: int, crop: str = "center") -> np.ndarray:
    """One observation's camera images (the embodiment's order) -> the model's frame of one step:
    (size, size, 3) for one camera, (K, size, size, 3) for K cameras, each by `prepare_frame`."""
    frames = [prepare_frame(img, size, crop) for img in images]
    if not frames:
        raise ImageError("no camera image")
    return frames[0] if len(frames) == 1 else np.stack(frames)


def frame_window(t: np.ndarray, frames: int) -> np.ndarray:
    """Indices of the frame history ending at step t, repeating the first frame at the episode start. (B, F)."""
    return np.maximum(np.asarray(t)[:, None] - np.arange(frames - 1, -1, -1)[None, :], 0)


def stack_history(history, frames: int) -> np.ndarray:
    """The `frame_window` of the newest of a policy's own frames, stacked (F, ...): the window training
    reads at the same step (history[0] is the episode's first frame or the oldest one kept)."""
    if not history:
        raise ValueError("stack_history needs at least one frame")
    recent = list(history)[-frames:]
    return np.stack([recent[i] for i in frame_window(np.array([len(recent) - 1]), frames)[0]])


class FrameHistory:
    """The frames of the last decisions (one per control step, as in the data), newest last."""

    def __init__(self, frames: int):
        self.frames = max(int(frames), 1)
        self._recent: list[np.ndarray] = []

    def clear(self) -> None:
        self._recent = []

    def push(self, frame: np.ndarray) -> np.ndarray:
        """Add the frame of this decision; returns the model's (F, H, W, 3) window ending at it."""
        self._recent = self._recent[-(self.frames - 1):] + [frame] if self.frames > 1 else [frame]
        return stack_history(self._recent, self.frames)

    def __len__(self) -> int:
        return len(self._recent)
