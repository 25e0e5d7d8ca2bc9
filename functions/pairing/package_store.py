"""The one owner of the MongoDB `device_packages` collection: what each NAS reported it runs (docs/device-protocol.md).

One document per (serial, package): the package's declared settings and current values as the device last
reported them, plus the owner's latest change (`change`), pending until the device acknowledges it. Keyed by
serial because that is the device's identity in the protocol; the API finds the serial from the owner's device.
Every change transition is a compare-and-set on `change.id` and `change.state`, so an ack is applied once.
"""

from __future__ import annotations

from datetime import datetime

from pymongo import ASCENDING, ReturnDocument, UpdateOne

from runtime.mongo import register_indexes


@register_indexes
def _indexes(db) -> None:
    db.device_packages.create_index([("serial", ASCENDING), ("name", ASCENDING)], unique=True,
                                    name="serial_package_unique")
    db.device_packages.create_index([("change.id", ASCENDING)], sparse=True)


def for_serial(db, serial: str) -> list[dict]:
    return list(db.device_packages.find({"serial": serial}).sort("name", ASCENDING))


def get(db, serial: str, name: str) -> dict | None:
    return db.device_packages.find_one({"serial": serial, "name": name})


def by_change_id(db, change_id: str) -> dict | None:
    return db.device_packages.find_one({"change.id": change_id}, {"serial": 1, "name": 1, "change": 1})


def replace_report(db, serial: str, packages: list[dict], now: datetime) -> None:
    """The device's whole list: each package upserted (its change kept), packages it no longer runs removed."""
    names = [p["name"] for p in packages]
    ops = [UpdateOne({"serial": serial, "name": p["name"]},
                     {"$set": {**p, "reported_at": now}, "$setOnInsert": {"change": None}}, upsert=True)
           for p in packages]
    if ops:
        db.device_packages.bulk_write(ops, ordered=False)
    db.device_packages.delete_many({"serial": serial, "name": {"$nin": names}})


def start_change(db, serial: str, name: str, change: dict) -> dict | None:
    """The owner's new change replaces any earlier one (whose ack then no longer matches); the record after."""
    return db.device_packages.find_one_and_update({"serial": serial, "name": name}, {"$set": {"change": change}},
                                                  return_document=ReturnDocument.AFTER)


def finish_change(db, serial: str, change_id: str, now: datetime, state: str, values: dict | None = None,
                  reason: str | None = None) -> dict | None:
    """pending → applied|failed, only for this device's current, unexpired change; None when it is not that."""
    fields: dict = {"change.state": state, "change.finished_at": now}
    if reason is not None:
        fields["change.reason"] = reason
    for key, value in (values or {}).items():
        fields[f"values.{key}"] = value
    return db.device_packages.find_one_and_update(
        {"serial": serial, "change.id": change_id, "change.state": "pending", "change.expires_at": {"$gt": now}},
        {"$set": fields}, return_document=ReturnDocument.AFTER)


def fail_change(db, serial: str, change_id: str, now: datetime, reason: str) -> None:
    """A change that could not even be sent (the broker was away)."""
    db.device_packages.update_one({"serial": serial, "change.id": change_id, "change.state": "pending"},
                                  {"$set": {"change.state": "failed", "change.reason": reason,
                                            "change.finished_at": now}})


def time_out(db, serial: str, now: datetime) -> int:
    """Pending changes of this device past their deadline → failed (`timeout`)."""
    return db.device_packages.update_many(
        {"serial": serial, "change.state": "pending", "change.expires_at": {"$lte": now}},
        {"$set": {"change.state": "failed", "change.reason": "timeout", "change.finished_at": now}}).modified_count
