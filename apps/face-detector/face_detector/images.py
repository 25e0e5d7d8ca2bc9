"""Bytes → an oriented RGB array small enough to detect in, opened defensively (formats by content, pixel
limit from the header, truncated data refused)."""

from __future__ import annotations

import io
import warnings

import numpy as np

FORMATS = ("JPEG", "PNG", "WEBP", "HEIF")
MAX_PIXELS = 60_000_000
DETECT_SIDE = 800  # faces are found on the photo scaled to fit this; boxes are scaled back

_heif = False


class NotAnImage(Exception):
    pass


def load(data: bytes, side: int = DETECT_SIDE, max_pixels: int = MAX_PIXELS) -> tuple[np.ndarray, float, int, int]:
    """(RGB array fit into side×side, factor from it to the oriented original, original width, height)."""
    global _heif
    from PIL import Image, ImageOps, UnidentifiedImageError

    if not _heif:
        import pillow_heif

        pillow_heif.register_heif_opener()
        _heif = True
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data), formats=FORMATS)
            if image.width * image.height > max_pixels:
                raise NotAnImage(f"{image.width}×{image.height} pixels is more than the {max_pixels} read here")
            width, height = image.size
            if image.getexif().get(0x0112) in (5, 6, 7, 8):
                width, height = height, width
            image.draft("RGB", (side, side))  # JPEG: decode at a reduced scale
            image = ImageOps.exif_transpose(image).convert("RGB")
            image.thumbnail((side, side), Image.Resampling.BILINEAR)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise NotAnImage(f"too many pixels: {str(exc)[:200]}") from exc
    except UnidentifiedImageError as exc:
        raise NotAnImage("not a JPEG, PNG, WebP or HEIC image") from exc
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise NotAnImage(f"corrupt or truncated image: {str(exc)[:200]}") from exc
    return np.asarray(image), width / image.width, width, height
