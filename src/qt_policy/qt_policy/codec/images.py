"""Camera images: sensor_msgs/Image and CompressedImage <-> (H, W, 3) uint8 RGB, without cv_bridge (not
installable everywhere). The functions take the message *fields* (plain Python / numpy values) or any
object that has them (an rclpy or a rosbags message), so they run and are tested without ROS; malformed
input raises `ImageError` saying what is wrong (the policy node turns that into one throttled warning
and no motion). The node, the bag reader, the recorder's compression and the evaluation all decode here.
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


def image_msg_to_rgb(msg) -> np.ndarray:
    """(H, W, 3) uint8 RGB from a sensor_msgs/Image or CompressedImage (rclpy or rosbags object)."""
    if hasattr(msg, "format"):
        return compressed_to_rgb(str(msg.format), msg.data)
    return image_to_rgb(str(msg.encoding), msg.height, msg.width, msg.step, msg.data, bool(msg.is_bigendian))


def image_fields(image: np.ndarray, encoding: str = "rgb8") -> dict:
    """sensor_msgs/Image fields (height, width, encoding, is_bigendian, step, data) of an 8-bit array
    laid out as `encoding` ((H, W, C), or (H, W) for mono8)."""
    if encoding not in _LAYOUT or _LAYOUT[encoding][1] != 1:
        raise ValueError(f"unsupported encoding {encoding!r}; supported: "
                         f"{sorted(e for e, (_, depth) in _LAYOUT.items() if depth == 1)}")
    channels = _LAYOUT[encoding][0]
    image = np.asarray(image)
    if image.dtype != np.uint8:
        raise ValueError(f"image must be uint8, got {image.dtype}")
    if image.ndim not in (2, 3) or (image.shape[2] if image.ndim == 3 else 1) != channels:
        raise ValueError(f"image shape {image.shape} does not match encoding {encoding}")
    h, w = image.shape[:2]
    return dict(height=h, width=w, encoding=encoding, is_bigendian=0, step=w * channels,
                data=np.ascontiguousarray(image).reshape(-1))


COMPRESSED_FORMATS = ("jpeg", "png")


def compress_rgb(image: np.ndarray, fmt: str = "jpeg", quality: int = 90) -> tuple[str, np.ndarray]:
    """(CompressedImage format string as image_transport writes it, encoded bytes) of an (H, W, 3) uint8
    RGB array; fmt 'jpeg' (lossy, `quality`) or 'png' (lossless). `compressed_to_rgb` reads it back."""
    if fmt not in COMPRESSED_FORMATS:
        raise ValueError(f"compressed image format must be 'jpeg' or 'png', got {fmt!r}")
    bgr = cv2.cvtColor(np.ascontiguousarray(image, dtype=np.uint8), cv2.COLOR_RGB2BGR)
    params = [cv2.IMWRITE_JPEG_QUALITY, int(quality)] if fmt == "jpeg" else [cv2.IMWRITE_PNG_COMPRESSION, 1]
    ok, buf = cv2.imencode(".jpg" if fmt == "jpeg" else ".png", bgr, params)
    if not ok:
        raise ValueError(f"cv2 could not encode a {image.shape} frame as {fmt}")
    return f"rgb8; {fmt} compressed bgr8", buf.reshape(-1)
