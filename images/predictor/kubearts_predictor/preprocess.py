"""Images to model input, with the limits checked before any pixel is decoded.

Pillow decodes (JPEG, PNG, BMP, GIF's first frame, WebP, TIFF), converts to RGB (grey,
palette and RGBA too), resizes bilinearly to the model's input size and rounds to uint8, and
the batch is handed to the model as float32 0-255: the trainer's input pipeline, whose
``tf.image.resize`` samples at half-pixel centres without antialiasing. Pillow's ``resize``
antialiases when it shrinks (a 500x375 photo to 224x224 differs by 26 grey levels on average),
so the resize here is Pillow's bilinear affine transform on each channel as 32-bit floats,
rounded once at the end — equal to TensorFlow's result but for rare ties (±1).
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
        if rgb.size == (size[1], size[0]):
            return np.asarray(rgb, dtype=np.uint8)
        return _resize(rgb, size)
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        raise BadImageError(f"not a decodable image: {exc}", "undecodable") from exc


def _resize(rgb: Image.Image, size: tuple[int, int]) -> np.ndarray:
    """Bilinear, half-pixel centres, no antialiasing, rounded: ``tf.image.resize``'s way."""
    height, width = size
    scale = (rgb.width / width, 0.0, 0.0, 0.0, rgb.height / height, 0.0)
    resized = np.empty((height, width, 3), dtype=np.float32)
    for index, channel in enumerate(rgb.split()):  # one float channel in memory at a time
        resized[..., index] = np.asarray(
            channel.convert("F").transform(
                (width, height), Image.Transform.AFFINE, scale, Image.Resampling.BILINEAR
            )
        )
    return np.clip(np.rint(resized), 0, 255).astype(np.uint8)


def to_batch(images: list[np.ndarray]) -> np.ndarray:
    """uint8 [H, W, 3] images → float32 [N, H, W, 3], pixel values 0-255."""
    return np.stack(images).astype(np.float32)
