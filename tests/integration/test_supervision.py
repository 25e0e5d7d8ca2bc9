"""`make run`'s supervision for real: the Procfile's worker and relay under supervisord, the worker SIGKILLed
in the middle of a burst of sync pushes to the FCM stand-in. It is back at once, the relay never stopped,
every push reaches FCM, and Ctrl-C (SIGINT to supervisord) stops everything.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

import pytest

from push import registry
from runtime import events
from runtime.supervise import parse_procfile, write_config
from tests.fixtures.pairing import wait_until

ROOT = Path(__file__).resolve().parents[2]
SUPERVISORCTL = str(Path(sys.executable).with_name("supervisorctl"))
SUPERVISORD = str(Path(sys.executable).with_name("supervisord"))


class Supervised:
    """supervisord running some Procfile lines, with a short state dir (a Unix socket path is limited)."""

    def __init__(self, names: list[str], env: dict):
        lines = dict(parse_procfile((ROOT / "Procfile").read_text()))
        self.dir = Path(tempfile.mkdtemp(prefix="pcs-", dir="/tmp"))
        procfile = self.dir / "Procfile"
        procfile.write_text("".join(f"{name}: {lines[name]}\n" for name in names))
        self.conf = write_config(procfile, self.dir / "supervisor", self.dir / "logs", ROOT)
        self.proc = subprocess.Popen([SUPERVISORD, "-c", str(self.conf)], cwd=ROOT, env={**os.environ, **env},
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)

    def ctl(self, *args: str) -> str:
        return subprocess.run([SUPERVISORCTL, "-c", str(self.conf), *args], capture_output=True, text=True,
                              timeout=30).stdout.strip()

    def pid(self, name: str) -> int:
        out = self.ctl("pid", name)
        return int(out) if out.isdigit() else 0

    def state(self, name: str) -> str:
        parts = self.ctl("status", name).split()
        return parts[1] if len(parts) > 1 else ""

    def log(self) -> str:
        return (self.dir / "supervisor" / "supervisord.log").read_text(errors="replace")

    def process_log(self, name: str) -> str:
        return (self.dir / "logs" / f"{name}.log").read_text(errors="replace")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)  # what Ctrl-C does
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
        shutil.rmtree(self.dir, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie is not alive
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False


@pytest.fixture
def supervised(fcm_env):
    made: list[Supervised] = []

    def start(*names: str) -> Supervised:
        running = Supervised(list(names), fcm_env)
        made.append(running)
        for name in names:
            wait_until(lambda n=name: running.state(n) == "RUNNING", timeout=60, every=0.3, what=f"{name} RUNNING")
        return running

    yield start
    for running in made:
        running.stop()


@pytest.mark.timeout(300)
def test_a_killed_worker_is_back_at_once_and_every_push_of_the_burst_arrives(clients, fcm_fake, supervised):
    clients.ensure_indexes()
    users = [f"u-sup-{i:02d}" for i in range(30)]
    for user in users:
        registry.register_phone(clients.db, user, "phone", "android", f"tok-{user}")
    stack = supervised("worker", "relay")
    worker_pid, relay_pid = stack.pid("worker"), stack.pid("relay")

    fcm_fake.delay = 1.0  # FCM answers slowly: the burst is in flight when the worker dies
    for seq, user in enumerate(users, 1):  # a burst of sync pushes: each user's phone is told to sync
        events.emit(clients.db, "node.changed", user, {"node_id": f"n{seq}", "seq": seq})
    assert fcm_fake.wait_for(lambda f: f.stats()["requests"] > 0, timeout=60)
    os.kill(worker_pid, signal.SIGKILL)
    killed_at = time.monotonic()

    new_pid = wait_until(lambda: (p := stack.pid("worker")) not in (0, worker_pid) and p, timeout=5, every=0.1,
                         what="supervisord to start the worker again")
    assert time.monotonic() - killed_at <= 5
    assert "exited: worker (terminated by SIGKILL; not expected)" in stack.log()
    fcm_fake.delay = 0.0
    wait_until(lambda: stack.state("worker") == "RUNNING", timeout=30, every=0.3, what="the new worker RUNNING")
    assert stack.pid("relay") == relay_pid  # the others never stopped

    tokens = {f"tok-{user}" for user in users}
    wait_until(lambda: tokens <= {m.token for m in fcm_fake.messages}, timeout=40, every=0.2,
               what="every push of the burst at FCM")  # the lease is 120 s: this is the lost-job detection
    wait_until(lambda: clients.db.push_deliveries.count_documents({"status": "sent"}) >= len(users), timeout=30,
               what="every delivery recorded sent")
    assert clients.db.push_deliveries.count_documents({"status": "failed"}) == 0
    for message in (m for m in fcm_fake.messages if m.token in tokens):
        assert message.message["data"]["type"] == "sync"

    # Ctrl-C: supervisord stops every process before it exits
    stack.proc.send_signal(signal.SIGINT)
    assert stack.proc.wait(timeout=60) == 0
    assert not _alive(new_pid) and not _alive(relay_pid)


def test_a_process_that_keeps_dying_is_retried_with_backoff_and_logged(tmp_path):
    lines = tmp_path / "Procfile"
    lines.write_text("flaky: sh -c 'exit 3'\nsteady: sleep 600\n")
    state = Path(tempfile.mkdtemp(prefix="pcs-", dir="/tmp"))
    conf = write_config(lines, state / "s", state / "l", ROOT)
    proc = subprocess.Popen([SUPERVISORD, "-c", str(conf)], cwd=ROOT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        log = state / "s" / "supervisord.log"
        wait_until(lambda: log.exists() and log.read_text().count("spawned: 'flaky'") >= 5,
                   timeout=60, every=0.2, what="five starts of flaky")
        text = log.read_text()
        assert text.count("exited: flaky (exit status 3; not expected)") >= 3
        assert "gave up: flaky" not in text
        assert "success: steady entered RUNNING state" in text
        # supervisor waits a second longer before each retry (its backoff), on its one-second tick: the starts
        # spread out, three retries later by about three seconds more (more than 1.5 s whatever the tick's phase)
        spawns = [datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S,%f")
                  for line in text.splitlines() if "spawned: 'flaky'" in line][:5]
        gaps = [(b - a).total_seconds() for a, b in zip(spawns, spawns[1:], strict=False)]
        assert gaps[3] > gaps[0] + 1.5, gaps
    finally:
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=60) == 0
        shutil.rmtree(state, ignore_errors=True)


@pytest.mark.timeout(420)
def test_any_one_process_killed_comes_back_and_the_others_never_stop(supervised, settings, clients):
    import requests

    names = ["web", "worker", "scheduler", "relay", "listener", "nas"]
    stack = supervised(*names)
    wait_until(lambda: _answers(settings.public_url), timeout=60, every=0.3, what="the gateway to answer")
    for victim in names:
        pids = {name: stack.pid(name) for name in names}
        os.kill(pids[victim], signal.SIGKILL)
        wait_until(lambda v=victim, old=pids[victim]: stack.pid(v) not in (0, old), timeout=5, every=0.1,
                   what=f"supervisord to start {victim} again")
        wait_until(lambda v=victim: stack.state(v) == "RUNNING", timeout=60, every=0.3, what=f"{victim} RUNNING")
        assert {n: stack.pid(n) for n in names if n != victim} == {n: p for n, p in pids.items() if n != victim}, \
            (victim, stack.log()[-3000:], stack.process_log("scheduler")[-3000:])
        if victim == "web":
            if not _wait(lambda: _answers(settings.public_url), 60):
                pytest.fail("the gateway did not answer again: " + stack.process_log("web")[-3000:])
    assert requests.get(f"{settings.public_url}/readyz", timeout=10).json()["status"] == "ok"


def _wait(predicate, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.3)
    return True


def _answers(url: str) -> bool:
    import requests

    try:
        return requests.get(f"{url}/healthz", timeout=2).status_code == 200
    except requests.RequestException:
        return False
