"""runtime/supervise.py: the supervisord configuration `make run` uses is generated from the Procfile."""

from __future__ import annotations

import configparser
import shlex
from pathlib import Path

import pytest

from runtime.supervise import Policy, ProcfileError, parse_procfile, program_command, render, write_config

ROOT = Path(__file__).resolve().parents[2]


def test_every_procfile_line_is_a_supervised_program(tmp_path):
    procfile = (ROOT / "Procfile").read_text()
    names = [name for name, _ in parse_procfile(procfile)]
    assert {"web", "worker", "relay", "listener", "scheduler", "nas"} <= set(names)

    conf_path = write_config(ROOT / "Procfile", tmp_path / "supervisor", tmp_path / "logs", ROOT)
    conf = configparser.RawConfigParser()
    conf.read(conf_path)
    programs = [s.removeprefix("program:") for s in conf.sections() if s.startswith("program:")]
    assert programs == names
    for name in programs:
        section = conf[f"program:{name}"]
        assert section["autorestart"] == "true" and section["autostart"] == "true"
        assert int(section["startretries"]) >= 100 and int(section["startsecs"]) >= 1
        assert section["stopasgroup"] == "true" and section["killasgroup"] == "true"
        assert section["stdout_logfile"] == str(tmp_path / "logs" / f"{name}.log")
        assert (tmp_path / "logs" / f"{name}.log").exists()
        assert section["directory"] == str(ROOT)
    assert conf["supervisord"]["nodaemon"] == "true"


def test_a_new_procfile_line_is_supervised_without_touching_anything_else(tmp_path):
    procfile = tmp_path / "Procfile"
    procfile.write_text("web: echo web\n\n# a comment\nsearch: .venv/bin/python -m functions.search.indexer\n")
    text = write_config(procfile, tmp_path / "s", tmp_path / "l", ROOT).read_text()
    assert "[program:search]" in text
    assert "command=/bin/bash -c 'exec .venv/bin/python -m functions.search.indexer'" in text


def test_commands_run_as_a_shell_line_that_execs_the_process():
    # a leading exec is not doubled; shell syntax survives quoting; % is escaped for supervisor's interpolation
    assert program_command("exec .venv/bin/python -m devices.nas_agent --serial X") == \
        "/bin/bash -c 'exec .venv/bin/python -m devices.nas_agent --serial X'"
    command = program_command("""printf '%s\\n' "$HOME" """)
    assert "%%s" in command
    assert shlex.split(command.replace("%%", "%")) == ["/bin/bash", "-c", """exec printf '%s\\n' "$HOME" """]
    # a compound line keeps its shell: exec would cut it after the first command
    assert program_command("make a && make b") == "/bin/bash -c 'make a && make b'"


@pytest.mark.parametrize("text, problem", [
    ("web echo\n", "line 1 is not `name: command`"),
    ("web:\n", "line 1 is not `name: command`"),
    ("we b: echo\n", "line 1 is not `name: command`"),
    ("web: a\nweb: b\n", "named twice"),
])
def test_a_bad_procfile_is_refused_naming_the_line(text, problem):
    with pytest.raises(ProcfileError, match=problem):
        parse_procfile(text)


def test_a_socket_path_too_long_for_unix_is_refused(tmp_path):
    deep = tmp_path / ("d" * 120)
    with pytest.raises(ProcfileError, match="too long"):
        render([("web", "echo")], ROOT, deep, deep, Policy())


def test_the_systemd_unit_and_the_compose_services_restart_what_dies():
    import yaml

    unit = (ROOT / "infra/systemd/pcloud.service").read_text().splitlines()
    assert "Restart=on-failure" in unit and "StartLimitIntervalSec=0" in unit
    assert any(line.startswith("RestartSec=") for line in unit)
    compose = yaml.safe_load((ROOT / "infra/docker-compose.yml").read_text())
    assert {name: svc.get("restart") for name, svc in compose["services"].items()} == \
        dict.fromkeys(compose["services"], "unless-stopped")
