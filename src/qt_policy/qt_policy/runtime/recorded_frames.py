"""Messages the recorder makes itself: compressed frames and the QActions of teleoperated steps."""
from __future__ import annotations

import math

import numpy as np

from ..codec.images import image_msg_to_rgb
from ..data import bag_format as bf


def compress_frame(raw: bytes, fmt: str, quality: int, typestore) -> bytes:
    """A raw sensor_msgs/Image (CDR) -> sensor_msgs/CompressedImage (CDR), same header: a 640x480
    frame at 30 Hz is ~27 MB/s raw, ~1 MB/s as JPEG. Training decodes both (data/bag_io.py)."""
    msg = typestore.deserialize_cdr(raw, bf.IMAGE_TYPE)
    rgb = image_msg_to_rgb(msg)
    out = bf.make_compressed_image_msg(rgb, bf.header_ns(msg), fmt, quality, msg.header.frame_id, typestore)
    return bytes(typestore.serialize_cdr(out, bf.COMPRESSED_IMAGE_TYPE))


def teleop_qaction(step, names, instruction: str, terminate: bool, typestore) -> bytes:
    """A teleoperated step as qt_msgs/QAction (CDR): stamp = its frame's stamp (the bag format's
    alignment), no bins and Q NaN (no policy chose it), source "teleop"."""
    msg = bf.make_qaction_msg(np.asarray(step.values, dtype=np.float32), int(step.frame), dimension_names=names,
                              q_value=math.nan, terminate=terminate, instruction=instruction, typestore=typestore,
                              source="teleop")
    return bytes(typestore.serialize_cdr(msg, bf.QACTION_TYPE))
