"""The periodic pairing jobs are declared to the scheduler, and rq can resolve what the scheduler enqueues."""

from __future__ import annotations

from runtime import scheduler


def test_pairing_jobs_are_scheduled_and_importable():
    jobs = scheduler.periodic_jobs()
    paths = {job.path for job in jobs}
    assert {"functions.pairing.tasks:expire_sessions", "functions.pairing.tasks:mark_devices_offline"} <= paths
    assert all(callable(job.job) and job.every >= 1 for job in jobs)


def test_tick_enqueues_jobs_rq_can_run(clients):
    enqueued = scheduler.tick(clients, now=1_000_000.0)
    assert "functions.pairing.tasks:expire_sessions" in enqueued
    jobs = clients.queue("maintenance").jobs
    funcs = {job.func for job in jobs}  # rq imports each job's function by name
    from functions.pairing import tasks

    assert tasks.expire_sessions in funcs and tasks.mark_devices_offline in funcs
    assert scheduler.tick(clients, now=1_000_000.5) == []  # the same slot is never enqueued twice


def test_the_jobs_time_out_sessions_and_mark_devices_offline_in_their_own_process(env, clients):
    import os
    import subprocess
    import sys
    from datetime import timedelta

    from functions.pairing.service import PairingService, Timing
    from runtime.ids import utcnow
    from tests.fixtures.pairing import ROOT, unique_serial

    clients.ensure_indexes()
    past = utcnow() - timedelta(seconds=200)
    svc = PairingService(clients.db, clients.mongo, clients.redis, clients.redis_keys, clients.amqp,
                         Timing(ack_seconds=15, confirm_seconds=120), clock=lambda: past)
    serial = unique_serial()
    svc.hello(serial, "M", "1")  # heard from 200 s ago
    sid = svc.start("u1", serial)["session_id"]  # its deadlines passed long ago; nobody polls
    code = ("from functions.pairing import tasks; "
            "print(tasks.expire_sessions(), tasks.mark_devices_offline())")
    out = subprocess.run([sys.executable, "-c", code], env={**os.environ, **env}, cwd=ROOT, capture_output=True,
                         text=True, timeout=60, check=True).stdout.split()
    assert out == ["1", "1"]
    assert svc._load(sid)["status"] == "failed"
    assert clients.db.devices.find_one({"serial": serial})["online"] is False
