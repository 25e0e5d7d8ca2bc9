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


class _Counting:
    """A requests.Session that remembers the path of every API call the client makes."""

    def __init__(self):
        import requests

        self.session = requests.Session()
        self.paths: list[str] = []
        inner = self.session.request

        def request(method, url, **kwargs):
            self.paths.append(f"{method} {url.split('/', 3)[3].split('?')[0]}")
            return inner(method, url, **kwargs)

        self.session.request = request


def test_an_unchanged_re_backup_is_one_request_for_its_pictures(files_api, tmp_path):
    api = files_api()
    for i in range(6):
        (tmp_path / f"IMG_{i}.jpg").write_bytes(os.urandom(3000 + i))  # by name: the server decides what is an image
    first = _Counting()
    counts = CameraBackup(tmp_path, SyncApi(api.base, api.token, first.session), remote="/A", out=io.StringIO()
                          ).run_once()
    assert counts["uploaded"] == 6
    assert first.paths.count("POST files/v1/uploads/batch") == 1
    assert first.paths.count("POST files/v1/uploads/commit") == 1
    (tmp_path / ".pcloud" / "camera.json").unlink()  # as a new phone with the same pictures
    again = _Counting()
    counts = CameraBackup(tmp_path, SyncApi(api.base, api.token, again.session), remote="/B", out=io.StringIO()
                          ).run_once()
    assert counts == {"uploaded": 6, "already_there": 0, "bytes_sent": 0}
    uploads = [p for p in again.paths if "uploads" in p]
    assert uploads == ["POST files/v1/uploads/batch"]
    assert len(_by_name(api, api.call("GET", "/path", params={"path": "/B"}).json()["id"])) == 6
