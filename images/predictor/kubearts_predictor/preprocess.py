"""Images to model input, with the limits checked before any pixel is decoded.

Pillow decodes (JPEG, PNG, BMP, GIF's first frame, WebP, TIFF) and converts to RGB (grey,
palette and RGBA too); :func:`resize_bilinear` resizes to the model's input size with the
arithmetic of the trainer's input pipeline (``tf.image.resize``, bilinear, half-pixel
centres, no antialiasing, in float32) and rounds to uint8, so a served model sees the
pixels it was trained and evaluated on; the batch is handed to the model as float32 0-255.
The pixel count comes from the file's header (``Image.open`` reads only the header), so a
decompression bomb is refused before it is decompressed.
"""

from __future__ import annotations

import io
import warnings

import numpy as np
from PIL import Image, UnidentifiedImageError

# Our own limit (checked from the header) is the one that applies; Pillow's own warning and
# error thresholds would otherwise fire on images we have already accepted or refused.
Image.MAX_IMAGE_PIXELS = None


class BadImageError(ValueError):
    """The upload cannot be used: undecodable, or more pixels than allowed."""

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


def decode(data: bytes, size: tuple[int, int], max_pixels: int) -> np.ndarray:
    """One image file's bytes → uint8 [H, W, 3] at ``size`` ([H, W])."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise BadImageError(f"not a decodable image: {exc}", "undecodable") from exc
    width, height = image.size
    if width * height > max_pixels:
        raise BadImageError(
            f"the image has {width}x{height} = {width * height} pixels; at most {max_pixels} "
            "are accepted",
            "too_many_pixels",
        )
    try:
        image.seek(0)
        image.load()
        rgb = image.convert("RGB")
        pixels = np.asarray(rgb, dtype=np.uint8)
        if pixels.shape[:2] != tuple(size):
            pixels = resize_bilinear(pixels, size)
        return pixels
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        raise BadImageError(f"not a decodable image: {exc}", "undecodable") from exc


def _axis(source: int, target: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Lower and upper source index and weight of the upper one, per target index."""
    scale = source / target
    centres = (np.arange(target, dtype=np.float32) + 0.5) * np.float32(scale) - 0.5
    lower_f = np.floor(centres)
    weight = (centres - lower_f).astype(np.float32)
    lower = np.clip(lower_f.astype(np.int64), 0, source - 1)
    upper = np.clip(lower_f.astype(np.int64) + 1, 0, source - 1)
    return lower, upper, weight


def resize_bilinear(pixels: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """uint8 [h, w, 3] → uint8 [H, W, 3] as the trainer resizes: ``tf.image.resize``'s
    bilinear interpolation (half-pixel centres, edges clamped, no antialiasing) in float32,
    then rounded half to even and clipped to 0-255."""
    image = pixels.astype(np.float32)
    top, bottom, dy = _axis(pixels.shape[0], size[0])
    left, right, dx = _axis(pixels.shape[1], size[1])
    dx = dx[None, :, None]
    upper = image[top][:, left] + (image[top][:, right] - image[top][:, left]) * dx
    lower = image[bottom][:, left] + (image[bottom][:, right] - image[bottom][:, left]) * dx
    blended = upper + (lower - upper) * dy[:, None, None]
    resized: np.ndarray = np.clip(np.round(blended), 0, 255).astype(np.uint8)
    return resized


def to_batch(images: list[np.ndarray]) -> np.ndarray:
    """uint8 [H, W, 3] images → float32 [N, H, W, 3], pixel values 0-255."""
    return np.stack(images).astype(np.float32)
