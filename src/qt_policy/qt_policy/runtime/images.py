"""Camera messages -> RGB uint8 arrays the model eats, without cv_bridge (not installable everywhere).

The functions take the message *fields* (plain Python / numpy values), not message objects, so they
run and are tested without ROS. Malformed input raises `ImageError` with a message saying what is
wrong; the node turns that into one throttled warning and no motion.
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
    if buf.size < step * height:
        raise ImageError(f"image data has {buf.size} bytes, expected step {step} * height {height} = {step * height}")
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


def center_crop_square(rgb: np.ndarray) -> np.ndarray:
    """Largest centred square: the model was trained on square images, so crop rather than squash."""
    h, w = rgb.shape[:2]
    side = min(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    return rgb[top: top + side, left: left + side]


def resize_square(rgb: np.ndarray, size: int) -> np.ndarray:
    """Centre-crop to a square, then resize to (size, size) with INTER_AREA (anti-aliased downscaling)."""
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise ImageError(f"expected an (H, W, 3) uint8 image, got {rgb.shape} {rgb.dtype}")
    if rgb.shape[0] == 0 or rgb.shape[1] == 0:
        raise ImageError(f"empty image ({rgb.shape[1]}x{rgb.shape[0]})")
    square = center_crop_square(rgb)
    if square.shape[0] == size:
        return np.ascontiguousarray(square)
    return cv2.resize(square, (size, size), interpolation=cv2.INTER_AREA)
