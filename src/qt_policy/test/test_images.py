"""Camera message fields -> RGB: every supported encoding, row padding, and each malformed case."""
import array
import re

import cv2
import numpy as np
import pytest

from qt_policy.codec.images import ImageError, compressed_to_rgb, image_to_rgb
from qt_policy.data.observation import prepare_frame

H, W = 3, 4
RGB = np.arange(H * W * 3, dtype=np.uint8).reshape(H, W, 3) * 7  # distinct values per channel


def _msg(pixels: np.ndarray, pad: int = 0):
    """(step, data) of a packed image with `pad` bytes at the end of each row."""
    rows = pixels.reshape(pixels.shape[0], -1).view(np.uint8)
    if pad:
        rows = np.concatenate([rows, np.full((rows.shape[0], pad), 255, np.uint8)], axis=1)
    return rows.shape[1], rows.tobytes()


@pytest.mark.parametrize('encoding, pixels', [
    ('rgb8', RGB),
    ('bgr8', RGB[..., ::-1]),
    ('rgba8', np.dstack([RGB, np.full((H, W), 9, np.uint8)])),
    ('bgra8', np.dstack([RGB[..., ::-1], np.full((H, W), 9, np.uint8)])),
])
@pytest.mark.parametrize('pad', [0, 5])
def test_color_encodings(encoding, pixels, pad):
    step, data = _msg(np.ascontiguousarray(pixels), pad)
    out = image_to_rgb(encoding, H, W, step, data)
    assert out.dtype == np.uint8 and out.shape == (H, W, 3)
    np.testing.assert_array_equal(out, RGB)


def test_mono8_and_buffer_types():
    gray = RGB[..., 0]
    step, data = _msg(gray, pad=3)
    for buf in (data, bytearray(data), array.array('B', data), memoryview(data), list(data)):
        out = image_to_rgb('mono8', H, W, step, buf)
        np.testing.assert_array_equal(out, np.repeat(gray[..., None], 3, axis=2))


@pytest.mark.parametrize('bigendian', [False, True])
def test_mono16_is_scaled_to_8_bit(bigendian):
    values = np.array([[0, 257, 65535, 32896]], dtype='>u2' if bigendian else '<u2')
    step, data = _msg(values)
    out = image_to_rgb('mono16', 1, 4, step, data, is_bigendian=bigendian)
    np.testing.assert_array_equal(out[0, :, 0], [0, 1, 255, 128])
    assert (out[..., 0] == out[..., 2]).all()


def test_compressed_png_and_jpeg():
    big = np.zeros((16, 16, 3), np.uint8)
    big[:, :, 0] = 200  # pure red in RGB
    ok, png = cv2.imencode('.png', cv2.cvtColor(big, cv2.COLOR_RGB2BGR))
    np.testing.assert_array_equal(compressed_to_rgb('png', png.tobytes()), big)
    ok, jpg = cv2.imencode('.jpg', cv2.cvtColor(big, cv2.COLOR_RGB2BGR))
    out = compressed_to_rgb('bgr8; jpeg compressed bgr8', jpg.tobytes())
    assert np.abs(out.astype(int) - big).max() <= 3


@pytest.mark.parametrize('fields, message', [
    (('yuv422_yuy2', H, W, W * 2, bytes(H * W * 2)), 'unsupported image encoding'),
    (('', H, W, W * 3, bytes(H * W * 3)), 'unsupported image encoding'),
    (('rgb8', H, W, W * 3 - 1, bytes(H * W * 3)), 'step 11 < width 4'),
    (('mono16', H, W, W, bytes(H * W * 2)), 'step 4 < width 4 * 2'),
    (('rgb8', H, W, W * 3, bytes(H * W * 3 - 1)), 'image data has 35 bytes, expected'),
    (('rgb8', 0, 0, 0, b''), 'empty image (0x0)'),
    (('bgr8', H, 0, 0, b''), 'empty image'),
])
def test_malformed_raw_images_raise(fields, message):
    with pytest.raises(ImageError, match=re.escape(message)):
        image_to_rgb(*fields)


@pytest.mark.parametrize('fmt, data, message', [
    ('jpeg', b'', 'no data'),
    ('jpeg', b'not an image at all', 'cannot decode'),
    ('16UC1; compressedDepth png', b'\x89PNG', 'compressed depth'),
])
def test_malformed_compressed_images_raise(fmt, data, message):
    with pytest.raises(ImageError, match=message):
        compressed_to_rgb(fmt, data)


def test_image_error_is_a_value_error():
    assert issubclass(ImageError, ValueError)


def test_resize_center_crops_to_square():
    img = np.zeros((40, 80, 3), np.uint8)
    img[:, 20:60] = 255  # the centre square is white, the sides (cropped away) black
    out = prepare_frame(img, 16)
    assert out.shape == (16, 16, 3)
    assert out.min() == 255
    assert prepare_frame(np.full((8, 8, 3), 7, np.uint8), 8).shape == (8, 8, 3)
    with pytest.raises(ImageError):
        prepare_frame(np.zeros((8, 8), np.uint8), 4)
