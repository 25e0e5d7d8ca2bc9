"""What a photo says about itself: format by content, oriented size, EXIF date, camera and GPS.

Opened defensively: only JPEG, PNG, WebP and HEIC/HEIF, the pixel count checked from the header before anything
is decoded, and the data decoded once (at a reduced scale where the format allows) so a truncated or corrupt file
is refused here rather than half-imported.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass
from datetime import UTC, datetime

FORMATS = ("JPEG", "PNG", "WEBP", "HEIF")
MAX_PIXELS = 60_000_000

ORIENTATION, MAKE, MODEL, DATETIME = 0x0112, 0x010F, 0x0110, 0x0132
EXIF_IFD, GPS_IFD = 0x8769, 0x8825
DATETIME_ORIGINAL, OFFSET_TIME_ORIGINAL = 0x9003, 0x9011

_heif = False


class NotAnImage(Exception):
    """Not a format we import, or corrupt/truncated: the execution is done with nothing created."""


class TooLarge(NotAnImage):
    """More pixels than MAX_PIXELS (a decompression bomb is refused from its header)."""


@dataclass(frozen=True)
class ImageInfo:
    format: str
    width: int  # as shown, EXIF orientation applied
    height: int
    taken_at: str | None
    camera: str | None
    gps: dict | None


def _register_heif() -> None:
    global _heif
    if not _heif:
        import pillow_heif

        pillow_heif.register_heif_opener()
        _heif = True


def inspect(data: bytes, max_pixels: int = MAX_PIXELS) -> ImageInfo:
    from PIL import Image, UnidentifiedImageError

    _register_heif()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data), formats=FORMATS)
            width, height = image.size
            if width * height > max_pixels:
                raise TooLarge(f"{width}×{height} pixels is more than the {max_pixels} this importer reads")
            exif = image.getexif()
            image.draft("RGB", (512, 512))
            image.load()  # a truncated or corrupt file fails here, not later
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise TooLarge(str(exc)[:200]) from exc
    except UnidentifiedImageError as exc:
        raise NotAnImage("not a JPEG, PNG, WebP or HEIC image") from exc
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise NotAnImage(f"corrupt or truncated image: {str(exc)[:200]}") from exc
    if exif.get(ORIENTATION) in (5, 6, 7, 8):
        width, height = height, width
    return ImageInfo(format=image.format or "", width=width, height=height, taken_at=_taken_at(exif),
                     camera=_camera(exif), gps=_gps(exif))


def _text(value) -> str | None:
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    if not isinstance(value, str):
        return None
    value = value.replace("\x00", "").strip()
    return value or None


def _taken_at(exif) -> str | None:
    """DateTimeOriginal (with its offset when the camera wrote one, else read as UTC), then DateTime."""
    sub = exif.get_ifd(EXIF_IFD)
    for raw, offset in ((sub.get(DATETIME_ORIGINAL), sub.get(OFFSET_TIME_ORIGINAL)), (exif.get(DATETIME), None)):
        text = _text(raw)
        if not text:
            continue
        try:
            when = datetime.strptime(text[:19], "%Y:%m:%d %H:%M:%S")
        except ValueError:
            continue
        offset = _text(offset)
        if offset:
            try:
                return datetime.strptime(f"{when:%Y-%m-%dT%H:%M:%S}{offset}", "%Y-%m-%dT%H:%M:%S%z").isoformat()
            except ValueError:
                pass
        return when.replace(tzinfo=UTC).isoformat().replace("+00:00", "Z")
    return None


def _camera(exif) -> str | None:
    make, model = _text(exif.get(MAKE)), _text(exif.get(MODEL))
    if make and model and model.lower().startswith(make.lower()):
        return model
    return " ".join(part for part in (make, model) if part) or None


def _degrees(value, ref) -> float | None:
    try:
        d, m, s = (float(x) for x in value)
    except (TypeError, ValueError, ZeroDivisionError):
        return None
    result = d + m / 60 + s / 3600
    return -result if _text(ref) in ("S", "W") else result


def _gps(exif) -> dict | None:
    gps = exif.get_ifd(GPS_IFD)
    if not gps:
        return None
    lat, lon = _degrees(gps.get(2), gps.get(1)), _degrees(gps.get(4), gps.get(3))
    if lat is None or lon is None or not (-90 <= lat <= 90 and -180 <= lon <= 180):
        return None
    out = {"lat": round(lat, 7), "lon": round(lon, 7)}
    try:
        if gps.get(6) is not None:
            altitude = float(gps[6])
            out["alt"] = round(-altitude if gps.get(5) in (1, b"\x01") else altitude, 2)
    except (TypeError, ValueError, ZeroDivisionError):
        pass
    return out


def mtime_fallback(mtime) -> str | None:
    """The file's mtime (§3 node, ISO 8601) when the picture carries no date."""
    return mtime if isinstance(mtime, str) and mtime else None
