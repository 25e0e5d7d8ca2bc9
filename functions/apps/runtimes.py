"""Where an app's actions run: `AppRuntime` and its two backends (CONTRACT §8 `runtime`).

* `PythonAppRuntime` — the archive's WSGI app, run by PCloud as its own gunicorn process on loopback from
  `PCLOUD_DATA_DIR/apps/<name>/<version>/`, with its declared requirements pip-installed into its own venv
  at install. To keep installs fast the venv sees PCloud's own site-packages (a `.pth` line), so gunicorn and
  Flask need not be downloaded again; whatever the app declares is installed into its venv and wins over them.
  The process gets a clean environment: `PCLOUD_API_URL`, its `PORT` and nothing else of ours — no database,
  Redis or broker credentials.
* `UrlAppRuntime` — a service deployed elsewhere (in a cluster, one Deployment per app:
  infra/k8s/app-deployment.yaml); PCloud only checks it answers.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import sysconfig
import time
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

import requests

PIP_TIMEOUT_S = 600
HEALTH_TIMEOUT_S = 2.0


class RuntimeFailed(Exception):
    """The runtime could not be prepared or started; the message is what the owner sees in `error`."""


class AppRuntime(Protocol):
    kind: str

    def prepare(self, app: dict, progress: Callable[[str], None]) -> None:
        """Everything before the first start (a venv with the requirements); raises RuntimeFailed."""

    def start(self, app: dict) -> tuple[str, int | None]:
        """Start (or locate) the runtime: (base URL, pid or None)."""

    def healthy(self, endpoint: str) -> bool:
        """It answers HTTP at all (any status): a crashed or hung runtime does not."""

    def stop(self, app: dict) -> None:
        """Stop what `start` started (nothing for a URL runtime)."""


def answers_http(endpoint: str, timeout: float = HEALTH_TIMEOUT_S) -> bool:
    try:
        requests.get(endpoint, timeout=timeout, allow_redirects=False)
    except requests.RequestException:
        return False
    return True


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class UrlAppRuntime:
    kind = "url"

    def prepare(self, app: dict, progress: Callable[[str], None]) -> None:
        progress("checking the service answers")

    def start(self, app: dict) -> tuple[str, int | None]:
        return app["manifest"]["runtime"]["url"].rstrip("/"), None

    def healthy(self, endpoint: str) -> bool:
        return answers_http(endpoint)

    def stop(self, app: dict) -> None:
        return None


class PythonAppRuntime:
    kind = "python"

    def __init__(self, apps_dir: Path, api_url: str, python: str = sys.executable):
        self.apps_dir = Path(apps_dir)
        self.api_url = api_url
        self.python = python

    def venv_dir(self, app: dict) -> Path:
        return self.apps_dir / app["_id"] / f".venv-{app['version']}"

    def log_path(self, app: dict) -> Path:
        return self.apps_dir / app["_id"] / f"{app['version']}.log"

    def prepare(self, app: dict, progress: Callable[[str], None]) -> None:
        venv = self.venv_dir(app)
        progress("creating the virtual environment")
        if not (venv / "bin" / "python").exists():
            done = subprocess.run([self.python, "-m", "venv", "--without-pip", str(venv)], capture_output=True,
                                  text=True, timeout=120)
            if done.returncode != 0:
                raise RuntimeFailed(f"creating the venv failed: {done.stderr.strip()[-2000:]}")
            site = Path(subprocess.run([str(venv / "bin" / "python"), "-c",
                                        "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                                       capture_output=True, text=True, timeout=60).stdout.strip())
            (site / "_pcloud_base.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
        requirements = (app["manifest"]["runtime"]["python"] or {}).get("requirements")
        if requirements:
            progress(f"installing {requirements}")
            try:
                done = subprocess.run(
                    [self.python, "-m", "pip", "--python", str(venv / "bin" / "python"), "install", "--no-input",
                     "--disable-pip-version-check", "--progress-bar", "off", "-r", requirements],
                    capture_output=True, text=True, timeout=PIP_TIMEOUT_S, cwd=app["dir"])
            except subprocess.TimeoutExpired:
                raise RuntimeFailed(f"pip install took longer than {PIP_TIMEOUT_S} s") from None
            if done.returncode != 0:
                reason = [line for line in (done.stderr or done.stdout).splitlines() if line.strip()]
                raise RuntimeFailed("pip install failed: " + " | ".join(reason[-6:])[-2000:])
        progress("ready to start")

    def start(self, app: dict) -> tuple[str, int | None]:
        port = free_port()
        venv = self.venv_dir(app)
        env = {"PATH": f"{venv / 'bin'}:/usr/bin:/bin", "PCLOUD_API_URL": self.api_url, "PORT": str(port),
               "PYTHONPATH": app["dir"], "PYTHONUNBUFFERED": "1", "HOME": app["dir"]}
        log = open(self.log_path(app), "ab")  # noqa: SIM115 - the child owns it from here
        try:
            proc = subprocess.Popen(
                [str(venv / "bin" / "python"), "-m", "gunicorn", "--bind", f"127.0.0.1:{port}", "--workers", "1",
                 "--threads", "8", "--timeout", "0", "--chdir", app["dir"], "--no-control-socket",
                 app["manifest"]["runtime"]["python"]["wsgi"]],
                cwd=app["dir"], env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True)
        finally:
            log.close()
        return f"http://127.0.0.1:{port}", proc.pid

    def healthy(self, endpoint: str) -> bool:
        return answers_http(endpoint)

    def stop(self, app: dict) -> None:
        stop_pid(app.get("pid"))

    def log_tail(self, app: dict, lines: int = 8) -> str:
        try:
            text = self.log_path(app).read_text(errors="replace").splitlines()
        except OSError:
            return ""
        return " | ".join(text[-lines:])


def stop_pid(pid: int | None, grace: float = 5.0) -> None:
    """TERM the process group `start` made (gunicorn and its worker), KILL what is left after `grace`."""
    if not pid:
        return
    try:
        os.killpg(pid, signal.SIGTERM)
    except (ProcessLookupError, PermissionError):
        return
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        try:
            done, _ = os.waitpid(pid, os.WNOHANG)
            if done:
                return
        except ChildProcessError:
            if not pid_alive(pid):
                return
        time.sleep(0.05)
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def pid_alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done:
            return False
    except ChildProcessError:
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def runtime_for(app: dict, apps_dir: Path, api_url: str) -> AppRuntime:
    runtime = app["manifest"]["runtime"]
    if "python" in runtime:
        return PythonAppRuntime(apps_dir, api_url)
    return UrlAppRuntime()
