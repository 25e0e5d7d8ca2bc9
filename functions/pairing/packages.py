"""NAS "Package Setting": what a paired NAS runs, its typed settings, and changing them (docs/device-protocol.md).

The device is the truth about its packages: it reports them (`packages.report`, the whole list with each
package's declared settings and current values), and a change the owner asks for is sent to it
(`package.configure`) and stays `pending` until the device answers `package.configure.ack` with the change's
id, or `failed` once `PCLOUD_PACKAGE_ACK_SECONDS` pass. An ack counts only from the device the change was sent
to, for the change that is still current and unexpired — a forged, unknown or stale one changes nothing — and
the compare-and-set in package_store makes a repeated ack a no-op. Plain Python: no Flask, no pika.
"""

from __future__ import annotations

import logging
import math
import re
from datetime import timedelta

from functions.pairing import package_store
from runtime import devices
from runtime.errors import BadRequest, NotFound, Unavailable
from runtime.ids import iso, new_id, utcnow

log = logging.getLogger(__name__)

SETTING_TYPES = ("boolean", "integer", "number", "string", "enum")
NAME_RE = re.compile(r"^[a-z][a-z0-9._-]{0,63}$")
KEY_RE = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
CHANGE_ID_RE = re.compile(r"^[0-9a-f]{24}$")
MAX_PACKAGES = 64
MAX_SETTINGS = 64
MAX_TEXT = 200  # titles, labels, versions
MAX_STRING = 4096  # the longest string setting a device may declare
MAX_CHOICES = 64
REASON_MAX = 64


class BadMessage(ValueError):
    """A device message that can never be applied (the listener dead-letters it)."""


# ----------------------------------------------------------------------------------------- typed settings


def _text(value, what: str, required: bool = False) -> str | None:
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value.strip() or len(value) > MAX_TEXT:
        raise BadMessage(f"{what} must be a string of 1-{MAX_TEXT} characters")
    return value


def _bound(value, what: str, integer: bool):
    if value is None:
        return None
    ok = isinstance(value, int) if integer else isinstance(value, int | float) and math.isfinite(value)
    if isinstance(value, bool) or not ok:
        raise BadMessage(f"{what} must be {'an integer' if integer else 'a finite number'}")
    return value


def check_spec(raw) -> dict:
    """One declared setting: `{"key","type",label?,description?,default?,min?,max?,max_length?,choices?}`."""
    if not isinstance(raw, dict):
        raise BadMessage("a setting must be an object")
    key = raw.get("key")
    if not isinstance(key, str) or not KEY_RE.match(key):
        raise BadMessage(f"setting key {key!r} must match {KEY_RE.pattern}")
    kind = raw.get("type")
    if kind not in SETTING_TYPES:
        raise BadMessage(f"setting {key}: type must be one of {', '.join(SETTING_TYPES)}")
    spec: dict = {"key": key, "type": kind}
    for field in ("label", "description"):
        if raw.get(field) is not None:
            spec[field] = _text(raw[field], f"setting {key}: {field}")
    if kind in ("integer", "number"):
        for field in ("min", "max"):
            bound = _bound(raw.get(field), f"setting {key}: {field}", kind == "integer")
            if bound is not None:
                spec[field] = bound
        if "min" in spec and "max" in spec and spec["min"] > spec["max"]:
            raise BadMessage(f"setting {key}: min is above max")
    elif kind == "string":
        limit = raw.get("max_length", 256)
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_STRING:
            raise BadMessage(f"setting {key}: max_length must be an integer 1-{MAX_STRING}")
        spec["max_length"] = limit
    elif kind == "enum":
        choices = raw.get("choices")
        if (not isinstance(choices, list) or not 1 <= len(choices) <= MAX_CHOICES
                or not all(isinstance(c, str) and 0 < len(c) <= MAX_TEXT for c in choices)
                or len(set(choices)) != len(choices)):
            raise BadMessage(f"setting {key}: choices must be 1-{MAX_CHOICES} distinct strings")
        spec["choices"] = choices
    if raw.get("default") is not None:
        problem = value_problem(spec, raw["default"])
        if problem:
            raise BadMessage(f"setting {key}: default {problem}")
        spec["default"] = raw["default"]
    return spec


def value_problem(spec: dict, value) -> str | None:
    """Why `value` does not fit the declared setting, or None when it does."""
    kind = spec["type"]
    if kind == "boolean":
        return None if isinstance(value, bool) else "must be true or false"
    if kind in ("integer", "number"):
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            return "must be a number" if kind == "number" else "must be an integer"
        if kind == "integer" and not isinstance(value, int):
            return "must be an integer"
        if "min" in spec and value < spec["min"]:
            return f"must be at least {spec['min']}"
        if "max" in spec and value > spec["max"]:
            return f"must be at most {spec['max']}"
        return None
    if kind == "string":
        if not isinstance(value, str):
            return "must be a string"
        if len(value) > spec["max_length"]:
            return f"must be at most {spec['max_length']} characters"
        if "\x00" in value:
            return "must not contain NUL"
        return None
    if not isinstance(value, str) or value not in spec["choices"]:
        return f"must be one of {', '.join(spec['choices'])}"
    return None


def check_package(raw) -> dict:
    """One reported package: `{"name","version","title"?,"description"?,"settings":[…],"values":{…}}`."""
    if not isinstance(raw, dict):
        raise BadMessage("a package must be an object")
    name = raw.get("name")
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise BadMessage(f"package name {name!r} must match {NAME_RE.pattern}")
    settings = raw.get("settings")
    if not isinstance(settings, list) or len(settings) > MAX_SETTINGS:
        raise BadMessage(f"package {name}: settings must be a list of at most {MAX_SETTINGS}")
    specs = [check_spec(s) for s in settings]
    if len({s["key"] for s in specs}) != len(specs):
        raise BadMessage(f"package {name}: setting keys repeat")
    values = raw.get("values") or {}
    if not isinstance(values, dict):
        raise BadMessage(f"package {name}: values must be an object")
    by_key = {s["key"]: s for s in specs}
    for key, value in values.items():
        if key not in by_key:
            raise BadMessage(f"package {name}: value for undeclared setting {key!r}")
        problem = value_problem(by_key[key], value)
        if problem:
            raise BadMessage(f"package {name}: {key} {problem}")
    return {"name": name, "version": _text(raw.get("version"), f"package {name}: version", required=True),
            "title": _text(raw.get("title"), f"package {name}: title"),
            "description": _text(raw.get("description"), f"package {name}: description"),
            "settings": specs, "values": {s["key"]: values.get(s["key"], s.get("default")) for s in specs}}


def check_report(packages) -> list[dict]:
    if not isinstance(packages, list) or len(packages) > MAX_PACKAGES:
        raise BadMessage(f"packages must be a list of at most {MAX_PACKAGES}")
    checked = [check_package(p) for p in packages]
    if len({p["name"] for p in checked}) != len(checked):
        raise BadMessage("package names repeat")
    return checked


def settings_problems(specs: list[dict], wanted) -> list[dict]:
    """Every reason `wanted` (setting → value) cannot be sent: unknown keys and values outside their types."""
    if not isinstance(wanted, dict) or not wanted:
        return [{"key": None, "message": "send a JSON object of at least one setting and its new value"}]
    by_key = {s["key"]: s for s in specs}
    problems = []
    for key, value in wanted.items():
        spec = by_key.get(key)
        if spec is None:
            problems.append({"key": key, "message": "this package has no such setting"})
            continue
        problem = value_problem(spec, value)
        if problem:
            problems.append({"key": key, "message": f"{spec.get('label') or key} {problem}", "type": spec["type"]})
    return problems


# --------------------------------------------------------------------------------------------- the service


def change_view(change: dict | None) -> dict | None:
    if not change:
        return None
    out = {"id": change["id"], "state": change["state"], "settings": change["settings"],
           "requested_at": iso(change.get("requested_at")), "expires_at": iso(change.get("expires_at"))}
    if change.get("finished_at"):
        out["finished_at"] = iso(change["finished_at"])
    if change.get("reason"):
        out["reason"] = change["reason"]
    return out


def package_view(doc: dict) -> dict:
    return {"name": doc["name"], "version": doc.get("version"), "title": doc.get("title"),
            "description": doc.get("description"), "settings": doc.get("settings") or [],
            "values": doc.get("values") or {}, "reported_at": iso(doc.get("reported_at")),
            "change": change_view(doc.get("change"))}


class Packages:
    """Reports from devices, the owner's API, and acks; `send(serial, message)` delivers `package.configure`."""

    def __init__(self, db, send, ack_seconds: int, clock=utcnow):
        self.db = db
        self.send = send
        self.ack_seconds = ack_seconds
        self.clock = clock

    # ------------------------------------------------------------------------------------ device side

    def on_report(self, serial: str, packages) -> int:
        """packages.report: the device's whole list replaces what we knew. Returns how many it runs."""
        checked = check_report(packages)
        package_store.replace_report(self.db, serial, checked, self.clock())
        return len(checked)

    def on_ack(self, serial: str, change_id, ok, reason=None) -> str:
        """package.configure.ack → "applied" or "failed"; BadMessage for a forged, unknown or stale ack."""
        if not isinstance(change_id, str) or not CHANGE_ID_RE.match(change_id):
            raise BadMessage("ack without a change id")
        if not isinstance(ok, bool):
            raise BadMessage("ack without ok: true|false")
        found = package_store.by_change_id(self.db, change_id)
        if found is None:
            raise BadMessage(f"ack for unknown change {change_id}")
        if found["serial"] != serial:
            raise BadMessage(f"ack from {serial} for a change sent to another device")
        change = found["change"]
        now = self.clock()
        if ok:
            done = package_store.finish_change(self.db, serial, change_id, now, "applied", values=change["settings"])
        else:
            reason = reason.strip()[:REASON_MAX] if isinstance(reason, str) and reason.strip() else "rejected"
            done = package_store.finish_change(self.db, serial, change_id, now, "failed", reason=reason)
        if done is None:
            raise BadMessage(f"ack for change {change_id} that is no longer pending ({change['state']})")
        return done["change"]["state"]

    # ------------------------------------------------------------------------------------- owner side

    def _serial(self, owner: str, device_id: str) -> str:
        device = devices.get_owned(self.db, owner, device_id)
        if device is None or device.get("kind") != "nas":
            raise NotFound("no such NAS", code="not_found")
        return device["serial"]

    def list(self, owner: str, device_id: str) -> dict:
        serial = self._serial(owner, device_id)
        package_store.time_out(self.db, serial, self.clock())
        return {"items": [package_view(d) for d in package_store.for_serial(self.db, serial)], "next_cursor": None}

    def get(self, owner: str, device_id: str, name: str) -> dict:
        serial = self._serial(owner, device_id)
        package_store.time_out(self.db, serial, self.clock())
        doc = package_store.get(self.db, serial, name)
        if doc is None:
            raise NotFound("this NAS reports no such package", code="not_found")
        return package_view(doc)

    def configure(self, owner: str, device_id: str, name: str, wanted) -> dict:
        """Validate against the package's declared types, record the change pending, send it to the device."""
        serial = self._serial(owner, device_id)
        doc = package_store.get(self.db, serial, name)
        if doc is None:
            raise NotFound("this NAS reports no such package", code="not_found")
        problems = settings_problems(doc.get("settings") or [], wanted)
        if problems:
            raise BadRequest("; ".join(f"{p['key']}: {p['message']}" if p["key"] else p["message"]
                                       for p in problems), code="invalid_settings", details={"problems": problems})
        now = self.clock()
        change = {"id": new_id(), "state": "pending", "settings": dict(wanted), "requested_by": owner,
                  "requested_at": now, "expires_at": now + timedelta(seconds=self.ack_seconds)}
        doc = package_store.start_change(self.db, serial, name, change)
        if doc is None:
            raise NotFound("this NAS reports no such package", code="not_found")
        message = {"type": "package.configure", "id": change["id"], "package": name, "settings": change["settings"],
                   "expires_at": iso(change["expires_at"])}
        try:
            self.send(serial, message)
        except Unavailable:
            package_store.fail_change(self.db, serial, change["id"], self.clock(), "broker_unavailable")
            raise
        return package_view(doc)
