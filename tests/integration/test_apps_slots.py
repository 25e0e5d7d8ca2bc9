"""Per-action concurrency slots under contention: never more holders than slots, none leaked, lapsed ones reused."""

from __future__ import annotations

import threading
import time
from datetime import timedelta

from functions.apps import executions as ex
from runtime.ids import utcnow


def test_slots_hold_under_contention_and_are_all_released(clients):
    db = clients.db
    held, peak, took, lock = [0], [0], [0], threading.Lock()

    def work(holder: str):
        for _ in range(15):
            slot = ex.take_slot(db, "app", "act", 3, holder, 30)
            if slot is None:
                time.sleep(0.005)
                continue
            with lock:
                held[0] += 1
                took[0] += 1
                peak[0] = max(peak[0], held[0])
            time.sleep(0.01)
            with lock:
                held[0] -= 1
            ex.release_slot(db, slot)

    threads = [threading.Thread(target=work, args=(f"p{i % 2}",)) for i in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert took[0] > 10 and peak[0] <= 3
    assert [d["holder"] for d in db.action_slots.find()] == [None, None, None]


def test_a_lapsed_slot_is_taken_over(clients):
    db = clients.db
    first = ex.take_slot(db, "app", "act", 1, "dead", 30)
    assert first and ex.take_slot(db, "app", "act", 1, "alive", 30) is None
    db.action_slots.update_one({"_id": "app/act/0"}, {"$set": {"until": utcnow() - timedelta(seconds=1)}})
    second = ex.take_slot(db, "app", "act", 1, "alive", 30)
    assert second and second != first
    ex.release_slot(db, first)  # the dead holder's late release changes nothing
    assert db.action_slots.find_one({"_id": "app/act/0"})["holder"] is not None
