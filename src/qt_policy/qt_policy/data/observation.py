"""The one observation pipeline: camera message -> RGB -> model frame -> frame history.

Used by every path that turns camera frames into model input, so training, evaluation and the robot
can never disagree: the bag reader (bag_format.image_msg_to_rgb) and the training cache
(cache.convert_bags), the evaluation rollouts (evaluation/rollout.py) and the policy node
(runtime/policy_runner.py).

* `image_to_rgb` / `compressed_to_rgb`: sensor_msgs/Image or CompressedImage fields -> (H, W, 3)
  uint8 RGB, without cv_bridge (not installable everywhere). They take the message *fields* (plain
  Python / numpy values), so they run and are tested without ROS; malformed input raises
  `ImageError` saying what is wrong (the node turns that into one throttled warning and no motion).
* `prepare_frame`: RGB -> the model's square input by the rule `CROP_RULES[...]` named in the
  checkpoint (ModelConfig.image_crop): "center" = the largest centred square, then INTER_AREA
  resize. A non-square camera is cropped, never squashed, in training and at run time alike.
* `FrameHistory` / `stack_history`: the last F decision frames, padded in front with the oldest,
  exactly the window `dataset.frame_window` gives training.
"""
from __future__ import annotations

import cv2
import numpy as np

# encoding -> (channels, bytes per channel)
_LAYOUT = {
    "rgb8": (3, 1),
    "bgr8": (3, 1),
    "rgba8": (4, 1),
    "bgra8": (4, 1),
    "mono8": (1, 1),
    "mono16": (1, 2),
}
SUPPORTED_ENCODINGS = tuple(_LAYOUT)


class ImageError(ValueError):
    """An image message that cannot be turned into a picture."""


def _as_bytes(data) -> np.ndarray:
    """bytes / bytearray / array.array / memoryview / list of ints -> flat uint8 array (no copy when possible)."""
    try:
        return np.frombuffer(memoryview(data).cast("B"), dtype=np.uint8)
    except TypeError:
        return np.asarray(data, dtype=np.uint8).reshape(-1)


def image_to_rgb(encoding: str, height: int, width: int, step: int, data, is_bigendian: bool = False) -> np.ndarray:
    """sensor_msgs/Image fields -> (H, W, 3) uint8 RGB.

    Rows may be padded (`step` > width * bytes per pixel); the padding is dropped. mono16 is scaled
    to 8 bits (x * 255 / 65535, rounded) and replicated to 3 channels; alpha is dropped.
    """
    enc = (encoding or "").strip().lower()
    if enc not in _LAYOUT:
        raise ImageError(f"unsupported image encoding {encoding!r}; supported: {', '.join(SUPPORTED_ENCODINGS)}")
    height, width, step = int(height), int(width), int(step)
    if height <= 0 or width <= 0:
        raise ImageError(f"empty image ({width}x{height})")
    channels, depth = _LAYOUT[enc]
    row_bytes = width * channels * depth
    if step < row_bytes:
        raise ImageError(f"step {step} < width {width} * {channels * depth} bytes per pixel = {row_bytes} ({enc})")
    buf = _as_bytes(data)
    if buf.size < step * (height - 1) + row_bytes:
        raise ImageError(f"image data has {buf.size} bytes, expected step {step} * height {height} = {step * height}")
    if buf.size < step * height:  # the last row's padding omitted
        buf = np.concatenate([buf, np.zeros(step * height - buf.size, np.uint8)])
    rows = buf[: step * height].reshape(height, step)[:, :row_bytes]
    if depth == 2:
        dtype = np.dtype(">u2" if is_bigendian else "<u2")
        mono16 = np.ascontiguousarray(rows).view(dtype).reshape(height, width).astype(np.float32)
        gray = np.rint(mono16 * (255.0 / 65535.0)).astype(np.uint8)
        return cv2.cvtColor(gray, cv2.COLOR_GRAY2RGB)
    img = rows.reshape(height, width, channels)
    if enc == "rgb8":
        return np.ascontiguousarray(img)
    code = {
        "bgr8": cv2.COLOR_BGR2RGB,
        "rgba8": cv2.COLOR_RGBA2RGB,
        "bgra8": cv2.COLOR_BGRA2RGB,
        "mono8": cv2.COLOR_GRAY2RGB,
    }[enc]
    return cv2.cvtColor(np.ascontiguousarray(img), code)


def compressed_to_rgb(format: str, data) -> np.ndarray:  # noqa: A002 (the message field's name)
    """sensor_msgs/CompressedImage fields -> (H, W, 3) uint8 RGB.

    `format` is informational ("jpeg", "png", "bgr8; jpeg compressed bgr8"): OpenCV detects the codec
    from the bytes. Depth images from compressed_depth_image_transport are refused.
    """
    if "compresseddepth" in (format or "").replace(" ", "").lower():
        raise ImageError(f"compressed depth images are not supported (format {format!r})")
    buf = _as_bytes(data)
    if buf.size == 0:
        raise ImageError("compressed image has no data")
    bgr = cv2.imdecode(buf, cv2.IMREAD_COLOR)
    if bgr is None or bgr.size == 0:
        raise ImageError(f"cannot decode compressed image ({buf.size} bytes, format {format!r})")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


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


def stack_history(history, frames: int) -> np.ndarray:
    """The last `frames` of a policy's own frame history, stacked (F, ...), padded in front with the
    oldest frame it has: at run time the same window `frame_window` gives training."""
    if not history:
        raise ValueError("stack_history needs at least one frame")
    recent = list(history)[-frames:]
    return np.stack([recent[0]] * (frames - len(recent)) + recent)


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
