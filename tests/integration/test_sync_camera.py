"""The reference sync client's camera-backup mode (`--camera DIR`) against the real gateway: new pictures go up
into /Camera with the §3 upload flow and a progress bar, once; other files stay home; names taken by other
content get a suffix."""

from __future__ import annotations

import io
import os

from clients.sync_client.__main__ import main
from clients.sync_client.api import SyncApi
from clients.sync_client.camera import CameraBackup
from tests.fixtures.photos import astronaut, encode, no_face


def _by_name(api, folder_id):
    response = api.call("GET", f"/nodes/{folder_id}/children")
    return {c["name"]: c for c in response.json()["items"]}


def test_camera_backup_sends_new_pictures_once(files_api, tmp_path):
    api = files_api()
    (tmp_path / "DCIM").mkdir()
    (tmp_path / "IMG_1.jpg").write_bytes(encode(astronaut()))
    (tmp_path / "DCIM" / "IMG_2.png").write_bytes(encode(no_face("coffee"), "PNG"))
    (tmp_path / "notes.txt").write_text("not a picture")
    out = io.StringIO()
    backup = CameraBackup(tmp_path, SyncApi(api.base, api.token), out=out)
    counts = backup.run_once()
    assert counts["uploaded"] == 2 and counts["bytes_sent"] == sum(
        p.stat().st_size for p in (tmp_path / "IMG_1.jpg", tmp_path / "DCIM" / "IMG_2.png"))
    lines = out.getvalue().splitlines()
    assert len(lines) == 2 and lines[-1].startswith("[" + "#" * 30 + "] 2/2 files")

    camera = next(c for c in api.call("GET", f"/nodes/{api.root()['id']}/children").json()["items"]
                  if c["name"] == "Camera")
    remote = _by_name(api, camera["id"])
    assert set(remote) == {"IMG_1.jpg", "IMG_2.png"}
    assert api.download(remote["IMG_1.jpg"]["id"]).content == (tmp_path / "IMG_1.jpg").read_bytes()

    assert CameraBackup(tmp_path, SyncApi(api.base, api.token), out=out).run_once()["uploaded"] == 0

    # a new picture whose name is taken by other content in /Camera, and one whose content is already there
    (tmp_path / "later").mkdir()
    (tmp_path / "later" / "IMG_1.jpg").write_bytes(encode(no_face("rocket")))
    (tmp_path / "copy.jpg").write_bytes((tmp_path / "IMG_1.jpg").read_bytes())
    os.utime(tmp_path / "copy.jpg")
    counts = CameraBackup(tmp_path, SyncApi(api.base, api.token), out=out).run_once()
    assert counts["uploaded"] == 2
    remote = _by_name(api, camera["id"])
    assert set(remote) == {"IMG_1.jpg", "IMG_2.png", "IMG_1 (2).jpg", "copy.jpg"}
    assert api.download(remote["IMG_1 (2).jpg"]["id"]).content == (tmp_path / "later" / "IMG_1.jpg").read_bytes()
    assert counts["bytes_sent"] == (tmp_path / "later" / "IMG_1.jpg").stat().st_size  # copy.jpg: no block sent


def test_cli_camera_once(files_api, tmp_path, capsys):
    api = files_api()
    (tmp_path / "IMG_9.webp").write_bytes(encode(astronaut(), "WEBP"))
    code = main(["--camera", str(tmp_path), "--once", "--server", api.base, "--token", api.token,
                 "--remote", "/Phone/Camera"])
    assert code == 0
    assert "camera: 1 uploaded, 0 already there" in capsys.readouterr().err
    phone = next(c for c in api.call("GET", f"/nodes/{api.root()['id']}/children").json()["items"]
                 if c["name"] == "Phone")
    camera = _by_name(api, phone["id"])["Camera"]
    assert set(_by_name(api, camera["id"])) == {"IMG_9.webp"}
    assert main(["--camera", str(tmp_path / "missing"), "--once", "--token", "t"]) == 2
