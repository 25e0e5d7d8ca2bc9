"""Archive unpacking and manifest checks: every problem kind, reported all at once."""

from __future__ import annotations

import io
import tarfile
import zipfile

import pytest
import yaml

from functions.apps import archive, triggers
from functions.apps import manifest as mf

GOOD = {
    "name": "face-detector", "version": "1.0.0", "title": "Face detector", "description": "Finds faces",
    "namespace": "faces", "schema": "schema.graphql",
    "settings": {"type": "object", "properties": {"min_faces": {"type": "integer", "minimum": 1, "default": 2}}},
    "runtime": {"python": {"wsgi": "detector.web:create_app()", "requirements": "requirements.txt"}},
    "actions": {"detect": {"params": {"type": "object", "required": ["image_id"],
                                      "properties": {"image_id": {"type": "string"}}},
                           "path": "/actions/detect", "timeout_s": 120, "concurrency": 2, "public": False}},
    "init": [{"action": "files.ensure-folder", "params": {"path": "{{ settings.folder }}"}}],
    "triggers": [{"name": "on-image", "event": "graph.node.created", "where": {"node_type": "photos.Image"},
                  "run": "detect", "params": {"image_id": "{{ event.subject }}"},
                  "retry": {"attempts": 5, "backoff_s": [1, 5, 30, 120, 600]}}],
    "uses": {"actions": ["files.read", "files.ensure-folder"], "types": {"photos.Image": ["read", "extend"]}},
    "web": {"path": "/"},
}
FILES = {"schema.graphql": b"type Face @node { score: Float }\n", "requirements.txt": b"",
         "detector/__init__.py": b"", "detector/web.py": b"def create_app(): ...\n"}


def check(manifest, files=None, known_types=frozenset({"photos.Image"}), public=None):
    return mf.check_manifest(manifest, FILES if files is None else files, max_action_seconds=900,
                             public_actions=public or {}, known_types=set(known_types))


def test_the_contract_example_has_no_problem():
    assert check(GOOD) == []
    assert mf.requests_of(GOOD, FILES["schema.graphql"].decode()) == {
        "actions": ["files.read", "files.ensure-folder"], "types": {"photos.Image": ["read", "extend"]},
        "triggers": [{"name": "on-image", "event": "graph.node.created", "where": {"node_type": "photos.Image"},
                      "run": "detect"}],
        "schema_types": ["faces.Face"], "web": "/"}


def test_every_problem_is_reported_at_once():
    bad = {**GOOD, "name": "Apps", "version": "one", "namespace": "files", "colour": "red",
           "runtime": {"python": {"wsgi": "nope.mod:app"}, "url": "http://x"},
           "actions": {"detect": {**GOOD["actions"]["detect"], "timeout_s": 5000, "params": {"type": "nope"}}},
           "init": [{"action": "faces.unknown", "params": {"path": "{{ secrets.key }}"}}],
           "triggers": [{"name": "t", "event": "graph..created", "run": "missing",
                         "params": {"x": "{% raw %}"}, "where": {"colour": "red"}},
                        {"name": "t", "event": "graph.node.created", "run": "detect"}],
           "uses": {"actions": ["other.thing", "files.read"], "types": {"photos.Video": ["read"], "bad": ["read"]}},
           "schema": "missing.graphql"}
    problems = check(bad)
    text = "\n".join(problems)
    for expected in ("name: 'Apps' is not a valid name", "version: 'one' is not a valid version",
                     "namespace: 'files' is reserved", "(root): unknown key(s) colour",
                     "runtime: {", "timeout_s: 5000 is over the limit", "actions/detect/params: not a valid JSON",
                     "init/0/action: unknown action 'faces.unknown'", "init/0/params/path: template",
                     "triggers/0/event: 'graph..created'", "triggers/0/run: unknown action 'missing'",
                     "triggers/0/params/x: template", "triggers/0/where: 'colour'",
                     "triggers/1/name: duplicate trigger name", "uses/actions/0: unknown action 'other.thing'",
                     "uses/types: unknown type 'photos.Video'", "uses/types: 'bad' is not namespace.Type",
                     "schema: file 'missing.graphql' is not in the archive",
                     "runtime/python/wsgi: module 'nope.mod' is not in the archive"):
        assert expected in text, f"{expected!r} missing from:\n{text}"


def test_reserved_name_and_public_actions_of_installed_apps():
    assert "name: 'search' is reserved" in check({**GOOD, "name": "search"})
    uses = {**GOOD, "uses": {"actions": ["image-importer.rescan", "files.ensure-folder"], "types": {}}}
    assert any("unknown action 'image-importer.rescan'" in p for p in check(uses))
    assert check(uses, public={"image-importer": {"rescan"}}) == []


def test_templates_only_dotted_lookups_of_event_settings_user():
    problems = []
    mf.templates_in({"a": "{{ event.data.node.id }}", "b": "x-{{ user.id }}-{{ settings.folder }}"}, "p", problems)
    assert problems == []
    mf.templates_in({"a": "{{ event.data | upper }}", "b": "{{ os.environ }}", "c": "{{ }}"}, "p", problems)
    assert len(problems) == 3


def test_yaml_problems():
    assert mf.parse_yaml(b"name: [unclosed")[1][0].startswith("pcloud-app.yaml: invalid YAML")
    assert mf.parse_yaml(b"- a list")[1] == ["pcloud-app.yaml: must be a mapping of keys, got list"]
    assert mf.parse_yaml(b"\xff\xfe")[1] == ["pcloud-app.yaml: not UTF-8 text"]
    # safe_load: no Python objects out of YAML
    assert "invalid YAML" in mf.parse_yaml(b"x: !!python/object/apply:os.system ['true']")[1][0]


def test_versions_order_like_semver():
    assert mf.version_key("1.0.0") < mf.version_key("1.0.1") < mf.version_key("1.10.0")
    assert mf.version_key("2.0.0-rc.1") < mf.version_key("2.0.0")
    assert mf.version_key("2.0.0-alpha") < mf.version_key("2.0.0-beta")


def test_settings_defaults_and_implied_enabled():
    assert mf.settings_defaults(GOOD["settings"], None) == {"min_faces": 2, "enabled": True}
    assert mf.settings_defaults(GOOD["settings"], {"enabled": False}) == {"min_faces": 2, "enabled": False}
    assert mf.settings_schema(None)["properties"]["enabled"] == {"type": "boolean", "default": True}


# --- archives -------------------------------------------------------------------------------------------
def tar_gz(members: list[tarfile.TarInfo | tuple[str, bytes]]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for member in members:
            if isinstance(member, tarfile.TarInfo):
                tar.addfile(member)
            else:
                info = tarfile.TarInfo(member[0])
                info.size = len(member[1])
                tar.addfile(info, io.BytesIO(member[1]))
    return buf.getvalue()


def zip_bytes(members: list[tuple[str, bytes]], symlink: str | None = None) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members:
            zf.writestr(name, data)
        if symlink:
            info = zipfile.ZipInfo(symlink)
            info.external_attr = (0o120777 << 16)
            zf.writestr(info, "/etc/passwd")
    return buf.getvalue()


def test_good_archives_unpack_to_memory():
    manifest = yaml.safe_dump(GOOD).encode()
    for data, kind in ((tar_gz([("pcloud-app.yaml", manifest), ("./detector/web.py", b"x")]), "tar.gz"),
                       (zip_bytes([("pcloud-app.yaml", manifest), ("detector/web.py", b"x")]), "zip")):
        assert archive.sniff_kind(data) == kind
        out = archive.unpack(data, kind, max_unpacked=10_000)
        assert out.problems == []
        assert out.files == {"pcloud-app.yaml": manifest, "detector/web.py": b"x"}


@pytest.mark.parametrize("name,problem", [("/etc/passwd", "absolute path"), ("../escape.py", "'..'"),
                                          ("a/../../b", "'..'"), ("C:\\win.py", "absolute path"),
                                          ("a\\..\\..\\b", "'..'")])
def test_path_traversal_members_are_problems(name, problem):
    for data, kind in ((tar_gz([(name, b"x"), ("ok.txt", b"y")]), "tar.gz"), (zip_bytes([(name, b"x")]), "zip")):
        out = archive.unpack(data, kind, max_unpacked=10_000)
        assert any(problem in p for p in out.problems), out.problems
        assert not any(".." in f or f.startswith("/") for f in out.files)


def test_links_and_devices_are_problems():
    sym = tarfile.TarInfo("evil")
    sym.type, sym.linkname = tarfile.SYMTYPE, "/etc/passwd"
    hard = tarfile.TarInfo("hard")
    hard.type, hard.linkname = tarfile.LNKTYPE, "pcloud-app.yaml"
    dev = tarfile.TarInfo("dev")
    dev.type = tarfile.CHRTYPE
    fifo = tarfile.TarInfo("fifo")
    fifo.type = tarfile.FIFOTYPE
    out = archive.unpack(tar_gz([sym, hard, dev, fifo]), "tar.gz", max_unpacked=10_000)
    assert out.problems == ["member 'evil': is a link", "member 'hard': is a link",
                            "member 'dev': is a device or special file", "member 'fifo': is a device or special file"]
    out = archive.unpack(zip_bytes([("a", b"1")], symlink="link"), "zip", max_unpacked=10_000)
    assert out.problems == ["member 'link': is a link"]


def test_zip_bomb_stops_at_the_limit_whatever_the_headers_say():
    bomb = zip_bytes([("pcloud-app.yaml", b"name: x\n"), ("zeros", b"\0" * 20_000_000)])
    assert len(bomb) < 100_000
    out = archive.unpack(bomb, "zip", max_unpacked=1_000_000)
    assert out.unpacked_bytes <= 1_000_000 + archive.CHUNK
    assert any("unpacks past the limit of 1000000 bytes" in p for p in out.problems)
    tar_bomb = tar_gz([("zeros", b"\0" * 20_000_000)])
    out = archive.unpack(tar_bomb, "tar.gz", max_unpacked=1_000_000)
    assert any("unpacks past the limit" in p for p in out.problems)
    assert out.files == {}


def test_garbage_is_not_an_archive():
    assert archive.sniff_kind(b"hello") is None
    out = archive.unpack(b"\x1f\x8b" + b"garbage" * 10, "tar.gz", max_unpacked=1000)
    assert out.problems and out.problems[0].startswith("archive is not a readable tar.gz")


# --- triggers -------------------------------------------------------------------------------------------
def test_type_wildcards_are_one_segment():
    assert triggers.type_matches("graph.node.*", "graph.node.created")
    assert triggers.type_matches("*.node.created", "files.node.created")
    assert not triggers.type_matches("graph.*", "graph.node.created")
    assert not triggers.type_matches("graph.node.created", "graph.node.updated")


def test_where_equalities_and_path_prefixes():
    event = {"type": "files.node.created", "node_type": None, "data": {"path": "/Camera/2024/a.jpg", "n": 1}}
    assert triggers.where_matches({"data.path": "/Camera/**"}, event)
    assert not triggers.where_matches({"data.path": "/Cam/**"}, event)
    assert not triggers.where_matches({"data.path": "/Camera/**"}, {**event, "data": {"path": "/Camera2/x"}})
    assert triggers.where_matches({"data.n": 1, "type": "files.node.created"}, event)
    assert not triggers.where_matches({"data.missing": "x"}, event)


def test_render_keeps_types_of_whole_templates():
    ctx = {"event": {"subject": "n1", "data": {"size": 5}}, "settings": {"folders": ["/Camera"]}, "user": {"id": "u"}}
    assert triggers.render({"id": "{{ event.subject }}", "size": "{{ event.data.size }}",
                            "folders": "{{settings.folders}}", "label": "u={{ user.id }}/{{ event.nothing }}"},
                           ctx) == {"id": "n1", "size": 5, "folders": ["/Camera"], "label": "u=u/"}


def test_loop_guard_and_depth():
    app = {"_id": "faces", "manifest": {"triggers": [{"name": "t", "event": "graph.node.*", "run": "a"}]}}
    event = {"type": "graph.node.created", "cause": {"app": "faces", "execution_id": "x", "depth": 3}}
    assert triggers.matches(app, event) == []
    other = {**event, "cause": {"app": "photos", "execution_id": "x", "depth": 3}}
    assert [t["name"] for t in triggers.matches(app, other)] == ["t"]
    assert triggers.depth_of(other) == 4
    assert triggers.depth_of({"type": "x"}) == 0
