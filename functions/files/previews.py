"""JPEG previews of a user's images (GET /files/v1/nodes/{id}/preview?size=256|1024).

A preview is made once per (content hash, size) and kept in the object store under its own SHA-256, with the
mapping in the `previews` collection (this module owns it): two users with the same photo, or one photo copied
into two folders, share one preview, while access is still checked on the caller's own node first. Preview
blobs have no `blocks` record, so the block GC never collects them; a preview whose blob went missing (its
bytes happened to equal a block that was collected) is simply made again.

Images are opened defensively: only JPEG, PNG, WebP and HEIC/HEIF are decoded, the pixel count is checked from
the header before anything is decoded (a decompression bomb is refused, not rendered), and EXIF orientation is
applied so the preview looks the way the camera held it.
"""

from __future__ import annotations

import hashlib
import io
import logging
import warnings

from functions.files import reading
from runtime.errors import ApiError, BadRequest, PayloadTooLarge
from runtime.ids import utcnow
from runtime.store import BlobNotFound

SIZES = (256, 1024)
MAX_SOURCE_BYTES = 128 * 1024 * 1024  # a bigger "image" is not worth decoding for a preview
MAX_PIXELS = 60_000_000  # ~ a 60-megapixel camera; the 100-megapixel bomb is refused from its header
FORMATS = ("JPEG", "PNG", "WEBP", "HEIF")
QUALITY = 85

log = logging.getLogger(__name__)
_heif_registered = False


class UnsupportedImage(ApiError):
    status, code = 415, "not_an_image"


def parse_size(raw: str | None) -> int:
    if raw is None:
        return SIZES[0]
    if not raw.isascii() or not raw.isdigit() or int(raw) not in SIZES:
        raise BadRequest(f"size must be one of {', '.join(map(str, SIZES))}", code="invalid_size",
                         details={"allowed": list(SIZES)})
    return int(raw)


def _register_heif() -> None:
    """pillow-heif registers a Pillow opener process-wide; do it on first use, not at import."""
    global _heif_registered
    if not _heif_registered:
        import pillow_heif

        pillow_heif.register_heif_opener()
        _heif_registered = True


def render(data: bytes, size: int, max_pixels: int = MAX_PIXELS) -> tuple[bytes, int, int]:
    """(JPEG bytes, width, height) of `data` scaled to fit size×size, orientation applied. Raises
    UnsupportedImage (not an image we decode, or corrupt) or PayloadTooLarge (too many pixels)."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    _register_heif()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data), formats=FORMATS)
            width, height = image.size
            if width * height > max_pixels:
                raise PayloadTooLarge(f"the image has {width}×{height} pixels; previews are made up to "
                                      f"{max_pixels} pixels", code="image_too_large",
                                      details={"width": width, "height": height, "max_pixels": max_pixels})
            image.draft("RGB", (size, size))  # JPEG: decode at a reduced scale, far less memory and time
            image = ImageOps.exif_transpose(image)
            image.thumbnail((size, size), Image.Resampling.LANCZOS)
            if image.mode not in ("RGB", "L"):
                image = _flatten(image)
            out = io.BytesIO()
            image.save(out, format="JPEG", quality=QUALITY, optimize=True)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise PayloadTooLarge("the image has too many pixels for a preview", code="image_too_large",
                              details={"max_pixels": max_pixels}) from exc
    except UnidentifiedImageError as exc:
        raise UnsupportedImage("the file is not a JPEG, PNG, WebP or HEIC image we can read",
                               details={"reason": str(exc)[:200]}) from exc
    except (OSError, SyntaxError, ValueError, EOFError) as exc:  # truncated or corrupt data inside a known format
        raise UnsupportedImage("the image is corrupt or truncated", details={"reason": str(exc)[:200]}) from exc
    return out.getvalue(), image.width, image.height


def _flatten(image):
    """Alpha over white, palettes expanded: JPEG has neither."""
    from PIL import Image

    rgba = image.convert("RGBA")
    background = Image.new("RGB", rgba.size, (255, 255, 255))
    background.paste(rgba, mask=rgba.getchannel("A"))
    return background


def preview(db, store, owner: str, node_id, size: int) -> tuple[bytes, str]:
    """(JPEG bytes, their SHA-256) of the caller's file `node_id`; 404 for a node that is not theirs."""
    node = reading.content_node(db, owner, node_id)
    if not node.get("content_hash") or not node.get("size"):
        raise UnsupportedImage("an empty file is not an image")
    if node["size"] > MAX_SOURCE_BYTES:
        raise PayloadTooLarge(f"previews are made of files up to {MAX_SOURCE_BYTES} bytes", code="image_too_large",
                              details={"size": node["size"], "max_bytes": MAX_SOURCE_BYTES})
    key = f"{node['content_hash']}:{size}"
    cached = db.previews.find_one({"_id": key})
    if cached:
        try:
            return store.get(cached["digest"]), cached["digest"]
        except BlobNotFound:
            log.info("preview %s lost its blob; making it again", key)
    data = b"".join(reading.iter_content(store, node, 0, node["size"] - 1))
    jpeg, width, height = render(data, size)
    digest = hashlib.sha256(jpeg).hexdigest()
    store.put(digest, jpeg)
    db.previews.update_one({"_id": key}, {"$set": {"digest": digest, "bytes": len(jpeg), "width": width,
                                                   "height": height, "created_at": utcnow()}}, upsert=True)
    return jpeg, digest
