"""`make run` under supervision: a supervisord configuration generated from the Procfile.

    python -m runtime.supervise --procfile Procfile --state-dir var/supervisor   # prints the config's path

Every Procfile line becomes a `[program:<name>]` of supervisor (PyPI `supervisor`): a process that dies is
started again at once, one that keeps dying within `startsecs` is retried with a growing pause (1 s, 2 s,
3 s, …) and every start and exit is logged, while the other processes keep serving. The configuration is
generated at each start, so a new Procfile line is supervised without anyone touching this file.
"""

from __future__ import annotations

import argparse
import re
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*$")
COMPOUND_RE = re.compile(r"[;&|()\n]")  # what makes a shell line more than one command
MAX_SOCKET_PATH = 100  # AF_UNIX paths are limited to 108 bytes


class ProcfileError(ValueError):
    """A Procfile line that cannot be supervised (named in the message)."""


@dataclass(frozen=True)
class Policy:
    """How supervisor treats every process. A process counts as started once it stayed up `start_seconds`;
    one that dies sooner is retried `start_retries` times with a pause growing by a second each time (up to
    a quarter of an hour, for days), so a crash loop neither spins the CPU nor is given up while nobody
    watches; a process that ran `start_seconds` and then died starts again at once."""

    start_seconds: int = 2
    start_retries: int = 1000
    stop_wait_seconds: int = 15
    log_max_bytes: str = "10MB"
    log_backups: int = 3


def parse_procfile(text: str) -> list[tuple[str, str]]:
    """`name: command` lines in order; blank lines and `#` comments are skipped, anything else is an error."""
    processes: list[tuple[str, str]] = []
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        name, sep, command = line.partition(":")
        name, command = name.strip(), command.strip()
        if not sep or not NAME_RE.match(name) or not command:
            raise ProcfileError(f"Procfile line {number} is not `name: command`: {raw!r}")
        if any(name == seen for seen, _ in processes):
            raise ProcfileError(f"Procfile line {number}: process {name!r} is named twice")
        processes.append((name, command))
    return processes


def program_command(command: str) -> str:
    """The Procfile command as a bash line, as Procfile runners run it. A simple command replaces the shell
    (exec), so supervisor's signals and pid are the process's own; a compound line (`a && b`, pipes) keeps
    its shell, and supervisor signals the whole process group (stopasgroup). `%` is escaped for
    supervisor's own `%(name)s` interpolation."""
    if command.startswith("exec "):
        command = command[len("exec "):]
    line = command if COMPOUND_RE.search(command) else "exec " + command
    return ("/bin/bash -c " + shlex.quote(line)).replace("%", "%%")


def render(processes: list[tuple[str, str]], root: Path, state_dir: Path, log_dir: Path,
           policy: Policy = Policy()) -> str:
    """The whole supervisord.conf: supervisord in the foreground, its control socket, one program a line."""
    socket = state_dir / "supervisor.sock"
    if len(str(socket)) > MAX_SOCKET_PATH:
        raise ProcfileError(f"the supervisor socket path {socket} is too long for a Unix socket; "
                            "use a shorter PCLOUD_DATA_DIR")
    lines = [
        "; generated from the Procfile by runtime/supervise.py at every `make run`: edit the Procfile instead",
        "[supervisord]",
        "nodaemon=true",
        f"logfile={state_dir / 'supervisord.log'}",
        f"logfile_maxbytes={policy.log_max_bytes}",
        f"logfile_backups={policy.log_backups}",
        f"pidfile={state_dir / 'supervisord.pid'}",
        f"childlogdir={log_dir}",
        "identifier=pcloud",
        "",
        "[unix_http_server]",
        f"file={socket}",
        "chmod=0700",
        "",
        "[rpcinterface:supervisor]",
        "supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface",
        "",
        "[supervisorctl]",
        f"serverurl=unix://{socket}",
    ]
    for name, command in processes:
        lines += [
            "",
            f"[program:{name}]",
            f"command={program_command(command)}",
            f"directory={root}",
            "autostart=true",
            "autorestart=true",
            f"startsecs={policy.start_seconds}",
            f"startretries={policy.start_retries}",
            "stopsignal=TERM",
            f"stopwaitsecs={policy.stop_wait_seconds}",
            # a process's children (rq's scheduler, gunicorn's workers) stop with it
            "stopasgroup=true",
            "killasgroup=true",
            "redirect_stderr=true",
            f"stdout_logfile={log_dir / (name + '.log')}",
            f"stdout_logfile_maxbytes={policy.log_max_bytes}",
            f"stdout_logfile_backups={policy.log_backups}",
        ]
    return "\n".join(lines) + "\n"


def write_config(procfile: Path, state_dir: Path, log_dir: Path, root: Path, policy: Policy = Policy()) -> Path:
    """Write `<state_dir>/supervisord.conf` (and each process's empty log file, so they can be followed
    from the start); returns its path."""
    processes = parse_procfile(procfile.read_text())
    if not processes:
        raise ProcfileError(f"{procfile} names no process")
    state_dir.mkdir(parents=True, exist_ok=True)
    log_dir.mkdir(parents=True, exist_ok=True)
    for name, _ in processes:
        (log_dir / f"{name}.log").touch()
    path = state_dir / "supervisord.conf"
    path.write_text(render(processes, root.resolve(), state_dir.resolve(), log_dir.resolve(), policy))
    return path


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m runtime.supervise", description=__doc__.split("\n")[0])
    parser.add_argument("--procfile", default="Procfile")
    parser.add_argument("--state-dir", required=True, help="where the config, socket and supervisord's log go")
    parser.add_argument("--log-dir", help="one log file per process (default: <state-dir>/../logs)")
    parser.add_argument("--root", default=".", help="the directory the commands run in")
    args = parser.parse_args(argv)
    state_dir = Path(args.state_dir)
    log_dir = Path(args.log_dir) if args.log_dir else state_dir.parent / "logs"
    try:
        print(write_config(Path(args.procfile), state_dir, log_dir, Path(args.root)))
    except (ProcfileError, OSError) as exc:
        print(f"supervise: {exc}", file=sys.stderr)
        raise SystemExit(2) from exc


if __name__ == "__main__":
    main()
