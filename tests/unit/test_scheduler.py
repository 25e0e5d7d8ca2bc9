"""Each package declares its periodic jobs; the scheduler collects them and refuses bad declarations at start-up."""

from __future__ import annotations

import sys
import textwrap

import pytest

from runtime import scheduler


def test_every_job_module_declares_jobs_rq_can_import():
    jobs = scheduler.periodic_jobs()
    by_module = {job.path.partition(":")[0] for job in jobs}
    assert set(scheduler.JOB_MODULES) <= by_module  # no listed module is empty
    assert len({job.path for job in jobs}) == len(jobs)
    assert {"runtime.events:purge_outbox_job", "functions.files.tasks:collect_blocks",
            "functions.sso.jobs:end_sessions"} <= {job.path for job in jobs}


@pytest.fixture
def module_dir(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(tmp_path))
    made = []

    def make(name: str, source: str) -> str:
        (tmp_path / f"{name}.py").write_text(textwrap.dedent(source))
        made.append(name)
        return name

    yield make
    for name in made:
        sys.modules.pop(name, None)


def test_a_declared_job_is_collected_with_its_interval_and_queue(module_dir):
    name = module_dir("sched_ok", """
        from runtime.scheduler import Periodic
        def nightly(): return 1
        PERIODIC = [Periodic(nightly, every=86400, queue="default")]
    """)
    [job] = scheduler.periodic_jobs([name])
    assert (job.path, job.every, job.queue) == ("sched_ok:nightly", 86400, "default")


@pytest.mark.parametrize("source, problem", [
    ("def job(): pass\n", "declares no PERIODIC"),
    ("from runtime.scheduler import Periodic\nPERIODIC = [Periodic(lambda: 1, every=5)]\n", "module-level function"),
    ("from runtime.scheduler import Periodic\ndef job(): pass\nPERIODIC = [Periodic(job, every=0)]\n", "every>=1"),
    ("from runtime.scheduler import Periodic\ndef job(): pass\nPERIODIC = [Periodic(job, 5), Periodic(job, 9)]\n",
     "declared twice"),
    ("PERIODIC = [('mod:job', 5, 'maintenance')]\n", "not a Periodic"),
])
def test_a_bad_declaration_fails_at_start_up(module_dir, source, problem):
    name = module_dir(f"sched_bad_{abs(hash(source)) % 10**8}", source)
    with pytest.raises(ValueError, match=problem):
        scheduler.periodic_jobs([name])


def test_a_missing_job_module_fails_at_start_up():
    with pytest.raises(ModuleNotFoundError):
        scheduler.periodic_jobs(["functions.no_such_package.tasks"])


def test_the_scheduler_process_enqueues_the_declared_jobs(env, clients):
    """`python -m runtime.scheduler` as the Procfile runs it (as __main__, the case that once refused every
    declaration): within a few seconds the 2-second pairing job is on the maintenance queue, as JSON."""
    import os
    import subprocess
    import time
    from pathlib import Path

    queue = clients.queue("maintenance")
    root = Path(__file__).resolve().parents[2]
    proc = subprocess.Popen([sys.executable, "-m", "runtime.scheduler", "functions.pairing.tasks"], cwd=root,
                            env={**os.environ, **env}, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and proc.poll() is None:
            names = {job.func_name for job in queue.jobs}
            if "functions.pairing.tasks.expire_sessions" in names:
                break
            time.sleep(0.2)
        assert proc.poll() is None, proc.stderr.read()
        assert {"functions.pairing.tasks.expire_sessions", "functions.pairing.tasks.mark_devices_offline"} <= {
            job.func_name for job in queue.jobs}
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    assert proc.returncode == 0  # SIGTERM: a clean stop


def test_on_insert_jobs_are_collected_and_bad_ones_refused(module_dir):
    [entry] = scheduler.on_insert_jobs(["functions.files.storage_tasks"])
    assert (entry.path, entry.collection) == ("functions.files.storage_tasks:place_requested", "placement_wakeups")
    assert scheduler.on_insert_jobs(["functions.pairing.tasks"]) == []  # optional per module
    name = module_dir("sched_bell_bad", """
        from runtime.scheduler import OnInsert
        def job(): pass
        ON_INSERT = [OnInsert(job, collection="x"), OnInsert(job, collection="x")]
    """)
    with pytest.raises(ValueError, match="declared twice"):
        scheduler.on_insert_jobs([name])


def test_an_insert_rings_the_job_onto_its_queue_at_once(clients):
    """The doorbell: an insert into the collection enqueues the job without waiting for a tick; inserts that
    come while the spacing runs are not lost, they enqueue it once more when it is over."""
    entry = scheduler.OnInsert(scheduler.main, collection="bell_test", spacing=0.5)
    ringer = scheduler.Ringer(clients, entry)
    queue = clients.queue("maintenance")
    try:
        assert ringer.poll(0.3) is False and queue.count == 0  # nothing inserted
        clients.db.bell_test.insert_one({"n": 1})
        polls = 0
        while not ringer.enqueued and polls < 50:
            ringer.poll(0.2)
            polls += 1
        assert ringer.enqueued == 1 and queue.jobs[0].func_name == "runtime.scheduler.main"
        clients.db.bell_test.insert_one({"n": 2})  # inside the spacing: pending, then enqueued
        while ringer.enqueued < 2 and polls < 100:
            ringer.poll(0.2)
            polls += 1
        assert ringer.enqueued == 2 and queue.count == 2
    finally:
        ringer.close()
        queue.empty()
