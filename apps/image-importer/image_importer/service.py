"""What each action does, given a PCloud client (no Flask here)."""

from __future__ import annotations

import posixpath

from image_importer import inspect
from image_importer.pcloud import Gone, PCloud, TooBig

IMAGE = "photos.Image"
DEFAULT_FOLDERS = ["/Camera"]


def folders_of(settings: dict | None) -> list[str]:
    folders = (settings or {}).get("folders") or DEFAULT_FOLDERS
    return ["/" + f.strip("/") if f.strip("/") else "/" for f in folders if isinstance(f, str)]


def under(path: str | None, folders: list[str]) -> bool:
    if not path:
        return False
    return any(folder == "/" or path.startswith(folder + "/") for folder in folders)


def setup(api: PCloud, settings: dict) -> dict:
    """Init: make sure every configured folder exists (files.ensure-folder)."""
    done = []
    for folder in folders_of(settings):
        if folder != "/":
            api.ensure_folder(folder)
            done.append(folder)
    return {"folders": done}


def images_of(api: PCloud, file_id: str) -> list[dict]:
    return sorted(api.nodes(IMAGE, {"file_id": file_id}), key=lambda n: (n.get("createdAt") or "", n["id"]))


def remove(api: PCloud, file_id: str, path: str | None = None, kind: str | None = None) -> dict:
    """A trashed or purged file loses its Image; a trashed folder loses the Images under it."""
    doomed = images_of(api, file_id)
    if kind == "folder" and path:
        prefix = path.rstrip("/") + "/"
        doomed += [n for n in api.nodes(IMAGE) if str(n["data"].get("path", "")).startswith(prefix)]
    removed = sum(1 for node in {n["id"]: n for n in doomed}.values() if api.delete(node["id"]))
    return {"removed": removed}


def import_file(api: PCloud, settings: dict, file_id: str, path: str | None, node: dict | None) -> dict:
    """Create or update the one Image of a file; a file that is outside the folders, gone, or not a picture has
    none (an Image it had before is removed)."""
    node = node or {}
    if node.get("kind") == "folder":
        return {"skipped": "folder"}
    if node.get("trashed_at"):
        return {"skipped": "trashed", **remove(api, file_id)}
    if not under(path, folders_of(settings)):
        return {"skipped": "outside the folders", **remove(api, file_id)}
    try:
        data = api.read_file(file_id)
    except Gone:
        return {"skipped": "the file is gone", **remove(api, file_id)}
    except TooBig as exc:
        return {"skipped": "not an image", "reason": str(exc), **remove(api, file_id)}
    try:
        info = inspect.inspect(data)
    except inspect.NotAnImage as exc:
        return {"skipped": "not an image", "reason": str(exc), **remove(api, file_id)}
    fields = {"file_id": file_id, "name": node.get("name") or posixpath.basename(path), "path": path,
              "width": info.width, "height": info.height,
              "taken_at": info.taken_at or inspect.mtime_fallback(node.get("mtime")),
              "camera": info.camera, "gps": info.gps}
    existing = images_of(api, file_id)
    if existing:
        keep, extra = existing[0], existing[1:]
        for node_ in extra:
            api.delete(node_["id"])
        changed = {k: v for k, v in fields.items() if keep["data"].get(k) != v}
        if changed:
            keep = api.update(keep["id"], changed)
        return {"image_id": keep["id"], "created": False, "changed": sorted(changed)}
    created = api.create(IMAGE, {k: v for k, v in fields.items() if v is not None})
    for node_ in images_of(api, file_id)[1:]:  # an execution racing this one made one too: keep the oldest
        api.delete(node_["id"])
    return {"image_id": created["id"], "created": True, "format": info.format}
