"""Images to model input, with the limits checked before any pixel is decoded.

Pillow decodes (JPEG, PNG, BMP, GIF's first frame, WebP, TIFF), converts to RGB (grey,
palette and RGBA too), resizes bilinearly to the model's input size and rounds to uint8 —
the trainer's input pipeline — and the batch is handed to the model as float32 0-255.
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
        if rgb.size != (size[1], size[0]):
            rgb = rgb.resize((size[1], size[0]), Image.Resampling.BILINEAR)
        return np.asarray(rgb, dtype=np.uint8)
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        raise BadImageError(f"not a decodable image: {exc}", "undecodable") from exc


def to_batch(images: list[np.ndarray]) -> np.ndarray:
    """uint8 [H, W, 3] images → float32 [N, H, W, 3], pixel values 0-255."""
    return np.stack(images).astype(np.float32)
