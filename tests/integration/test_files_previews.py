"""GET /files/v1/nodes/{id}/preview through the gateway, on both BlobStore backends: orientation, formats by
content, the cache by content hash, owner scoping and bad input (corrupt, truncated, bomb, not an image)."""

from __future__ import annotations

import io

import pytest
from PIL import Image

pytestmark = pytest.mark.parametrize("store_backend", ["local", "s3"], indirect=True)


def _encode(image: Image.Image, fmt: str, **kwargs) -> bytes:
    out = io.BytesIO()
    image.save(out, format=fmt, **kwargs)
    return out.getvalue()


def _astronaut() -> Image.Image:
    from skimage import data

    return Image.fromarray(data.astronaut())


def _preview(api, node_id: str, size: int | str | None = 256, headers=None):
    query = "" if size is None else f"?size={size}"
    return api.call("GET", f"/nodes/{node_id}/preview{query}", headers=headers or {})


def test_jpeg_preview_fits_size_and_is_cached_by_content(files_api, clients):
    api = files_api()
    root = api.root()
    data = _encode(_astronaut(), "JPEG", quality=90)
    first = api.upload(root["id"], "a.jpg", data)
    copy = api.upload(root["id"], "copy of a.jpg", data)

    small = _preview(api, first["id"], 256)
    assert small.status_code == 200, small.text
    assert small.headers["Content-Type"] == "image/jpeg"
    image = Image.open(io.BytesIO(small.content))
    assert image.format == "JPEG" and max(image.size) == 256
    big = _preview(api, first["id"], 1024)
    assert Image.open(io.BytesIO(big.content)).size == (512, 512)  # never upscaled

    again = _preview(api, copy["id"], 256)
    assert again.content == small.content and again.headers["ETag"] == small.headers["ETag"]
    assert clients.db.previews.count_documents({"_id": {"$regex": f"^{first['content_hash']}:"}}) == 2
    unchanged = _preview(api, first["id"], 256, headers={"If-None-Match": small.headers["ETag"]})
    assert unchanged.status_code == 304
    default = _preview(api, first["id"], None)
    assert default.status_code == 200 and default.content == small.content


def test_exif_orientation_is_applied(files_api):
    api = files_api()
    root = api.root()
    landscape = Image.new("RGB", (400, 200), (200, 30, 30))
    exif = Image.Exif()
    exif[0x0112] = 6  # the camera was turned: rotate 90° clockwise to show it
    node = api.upload(root["id"], "turned.jpg", _encode(landscape, "JPEG", exif=exif.tobytes()))
    answer = _preview(api, node["id"], 256)
    assert answer.status_code == 200
    assert Image.open(io.BytesIO(answer.content)).size == (128, 256)


@pytest.mark.parametrize("fmt,name", [("PNG", "alpha.png"), ("WEBP", "pic.webp"), ("HEIF", "pic.heic"),
                                      ("PNG", "named-wrongly.jpg")])
def test_other_formats_by_content(files_api, fmt, name):
    import pillow_heif

    pillow_heif.register_heif_opener()
    api = files_api()
    root = api.root()
    source = _astronaut().resize((300, 300))
    if fmt == "PNG":
        source = source.convert("RGBA")
    node = api.upload(root["id"], name, _encode(source, fmt))
    answer = _preview(api, node["id"], 256)
    assert answer.status_code == 200, answer.text
    preview = Image.open(io.BytesIO(answer.content))
    assert preview.format == "JPEG" and preview.size == (256, 256) and preview.mode == "RGB"


def test_bad_input_is_a_clear_error(files_api, clients):
    api = files_api()
    root = api.root()
    whole = _encode(_astronaut(), "JPEG")
    cases = {
        "not-an-image.jpg": (b"%PDF-1.4 this is not a picture at all\n" * 50, 415, "not_an_image"),
        "truncated.jpg": (whole[: len(whole) // 3], 415, "not_an_image"),
        "corrupt.png": (_encode(Image.new("RGB", (64, 64)), "PNG")[:40] + b"\x00" * 200, 415, "not_an_image"),
        "bomb.png": (_encode(Image.new("1", (10_000, 10_000)), "PNG"), 413, "image_too_large"),
    }
    for name, (data, status, code) in cases.items():
        node = api.upload(root["id"], name, data)
        answer = _preview(api, node["id"], 256)
        assert answer.status_code == status, (name, answer.text)
        assert answer.json()["error"]["code"] == code, name
    assert clients.db.previews.count_documents({}) == 0
    folder = _preview(api, root["id"], 256)
    assert folder.status_code == 409 and folder.json()["error"]["code"] == "not_a_file"
    good = api.upload(root["id"], "good.jpg", whole)
    assert _preview(api, good["id"], 300).json()["error"]["code"] == "invalid_size"
    assert _preview(api, good["id"], "abc").status_code == 400


def test_another_users_file_is_not_found(files_api):
    alice, bob = files_api(), files_api()
    node = alice.upload(alice.root()["id"], "mine.jpg", _encode(_astronaut(), "JPEG"))
    assert _preview(alice, node["id"]).status_code == 200
    answer = _preview(bob, node["id"])
    assert answer.status_code == 404 and answer.json()["error"]["code"] == "not_found"
