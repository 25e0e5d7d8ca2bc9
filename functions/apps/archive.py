"""Defensive unpacking of app archives (CONTRACT §8 "App archives").

An archive is untrusted input: members are read into memory one by one while counting the bytes actually
produced (never trusting the sizes a header claims), so a zip bomb stops at the limit instead of filling the
disk. Absolute paths, `..`, links and devices are problems, not errors: every one is reported at once and
nothing is written anywhere.
"""

from __future__ import annotations

import io
import posixpath
import stat
import tarfile
import zipfile
from dataclasses import dataclass, field

CHUNK = 64 * 1024


@dataclass
class Unpacked:
    """The archive's regular files by normalised relative path, and every problem found on the way."""

    files: dict[str, bytes] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    unpacked_bytes: int = 0


def sniff_kind(data: bytes, content_type: str | None = None) -> str | None:
    """`tar.gz` or `zip` by magic bytes (the Content-Type only breaks a tie); None when neither."""
    if data[:2] == b"\x1f\x8b":
        return "tar.gz"
    if data[:4] in (b"PK\x03\x04", b"PK\x05\x06"):
        return "zip"
    return None


def member_problem(name: str) -> str | None:
    """Why a member name is unsafe, or None. Backslashes count as separators (Windows-made zips)."""
    if not name or "\x00" in name:
        return f"member {name!r}: empty name or NUL byte"
    unified = name.replace("\\", "/")
    if unified.startswith("/") or (len(unified) > 1 and unified[1] == ":"):
        return f"member {name!r}: absolute path"
    if ".." in unified.split("/"):
        return f"member {name!r}: path has '..'"
    return None


def _normal(name: str) -> str:
    path = posixpath.normpath(name.replace("\\", "/"))
    while path.startswith("./"):
        path = path[2:]
    return path


def unpack(data: bytes, kind: str, max_unpacked: int, max_members: int = 10000) -> Unpacked:
    out = Unpacked()
    try:
        if kind == "zip":
            _unpack_zip(data, max_unpacked, max_members, out)
        else:
            _unpack_tar(data, max_unpacked, max_members, out)
    except _Stop:
        pass
    except (tarfile.TarError, zipfile.BadZipFile, EOFError, OSError, ValueError, NotImplementedError) as exc:
        out.problems.append(f"archive is not a readable {kind}: {exc}")
    return out


class _Stop(Exception):
    """Unpacking went past a limit; the problem is already recorded."""


def _add(out: Unpacked, name: str, reader, max_unpacked: int) -> None:
    buf = io.BytesIO()
    while True:
        chunk = reader.read(CHUNK)
        if not chunk:
            break
        out.unpacked_bytes += len(chunk)
        if out.unpacked_bytes > max_unpacked:
            out.problems.append(f"archive unpacks past the limit of {max_unpacked} bytes (at member {name!r})")
            raise _Stop
        buf.write(chunk)
    path = _normal(name)
    if path in out.files:
        out.problems.append(f"member {name!r}: duplicate path")
        return
    out.files[path] = buf.getvalue()


def _count(out: Unpacked, index: int, max_members: int) -> None:
    if index >= max_members:
        out.problems.append(f"archive has more than {max_members} members")
        raise _Stop


def _unpack_tar(data: bytes, max_unpacked: int, max_members: int, out: Unpacked) -> None:
    # Streaming mode ("r|gz") reads headers as it goes: a tar.gz bomb is cut off by the byte count below.
    with tarfile.open(fileobj=io.BytesIO(data), mode="r|gz") as tar:
        for index, member in enumerate(tar):
            _count(out, index, max_members)
            problem = member_problem(member.name)
            if problem:
                out.problems.append(problem)
                continue
            if member.issym() or member.islnk():
                out.problems.append(f"member {member.name!r}: is a link")
                continue
            if member.isdir():
                continue
            if not member.isreg():
                out.problems.append(f"member {member.name!r}: is a device or special file")
                continue
            reader = tar.extractfile(member)
            if reader is None:
                out.problems.append(f"member {member.name!r}: cannot be read")
                continue
            _add(out, member.name, reader, max_unpacked)


def _unpack_zip(data: bytes, max_unpacked: int, max_members: int, out: Unpacked) -> None:
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        for index, info in enumerate(zf.infolist()):
            _count(out, index, max_members)
            problem = member_problem(info.filename)
            if problem:
                out.problems.append(problem)
                continue
            mode = info.external_attr >> 16
            if stat.S_ISLNK(mode):
                out.problems.append(f"member {info.filename!r}: is a link")
                continue
            if info.is_dir():
                continue
            if stat.S_IFMT(mode) and not stat.S_ISREG(mode):
                out.problems.append(f"member {info.filename!r}: is a device or special file")
                continue
            with zf.open(info) as reader:
                _add(out, info.filename, reader, max_unpacked)


def pack_directory(root) -> bytes:
    """A bundled app's directory as a .tar.gz, so the catalog goes through the very same intake."""
    from pathlib import Path

    root = Path(root)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for path in sorted(root.rglob("*")):
            rel = path.relative_to(root)
            if any(part in ("__pycache__", ".venv", "node_modules", ".pytest_cache") for part in rel.parts):
                continue
            if path.is_symlink() or not path.is_file():
                continue
            tar.add(path, arcname=str(rel), recursive=False)
    return buf.getvalue()
