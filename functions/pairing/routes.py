"""HTTP side of pairing and the device list (CONTRACT §4): parse, call the service, shape JSON."""

from __future__ import annotations

import math

from flask import current_app, jsonify, request

from functions.pairing.schemas import (
    PACKAGE_SETTINGS_BODY,
    DevicePackage,
    DevicePackagePage,
    DevicePage,
    PageQuery,
    PairingSession,
    PairingStarted,
    StartPairing,
    WaitQuery,
)
from functions.pairing.service import MAX_WAIT_SECONDS, STATUSES, PairingService
from runtime.app import clients, json_body, page_params
from runtime.errors import BadRequest
from runtime.identity import current_identity
from runtime.schemas import Api, body

api = Api("pairing", import_name=__name__)
bp = api.blueprint


def service() -> PairingService:
    found = current_app.extensions.get("pairing_service")
    if found is None:
        found = current_app.extensions["pairing_service"] = PairingService.from_clients(clients())
    return found


@api.post("/pairing/v1/sessions", operation_id="startPairing",
          summary="Start pairing a NAS: it blinks, and the session waits for its button", body=StartPairing,
          responses={201: PairingStarted, 400: "invalid_serial",
                     404: "device_not_found: no device with this serial has said hello",
                     409: "device_paired_elsewhere, pairing_in_progress or too_many_sessions (5)",
                     429: "more than 10 starts in a minute",
                     503: "the broker did not confirm the request to the device"})
def start_session():
    ident = current_identity()
    return jsonify(service().start(ident.user_id, body(StartPairing).serial)), 201


@api.get("/pairing/v1/sessions/<session_id>", operation_id="getPairingSession",
         summary="A pairing session; with wait, answers as soon as the status differs from since (≤ 25 s)",
         query=WaitQuery, responses={200: PairingSession, 400: "invalid_wait or invalid_since",
                                     404: "unknown or not yours"})
def get_session(session_id: str):
    ident = current_identity()
    raw_wait = request.args.get("wait")
    since = request.args.get("since") or None
    if since is not None and since not in STATUSES:
        raise BadRequest(f"since must be one of {', '.join(STATUSES)}", code="invalid_since")
    if raw_wait in (None, ""):
        return jsonify(service().get(ident.user_id, session_id))
    try:
        wait = float(raw_wait)
    except ValueError:
        raise BadRequest("wait must be a number of seconds (at most 25)", code="invalid_wait") from None
    if not math.isfinite(wait) or wait < 0:
        raise BadRequest("wait must be a number of seconds (at most 25)", code="invalid_wait")
    return jsonify(service().wait(ident.user_id, session_id, since, min(wait, MAX_WAIT_SECONDS)))


@api.get("/devices/v1/devices", operation_id="listDevices", summary="Your paired NAS boxes and registered phones",
         query=PageQuery, responses={200: DevicePage, 400: "invalid_cursor or invalid_limit"})
def list_devices():
    ident = current_identity()
    cursor, limit = page_params(default_limit=100, max_limit=500)
    return jsonify(service().list_devices(ident.user_id, cursor, limit))


@api.delete("/devices/v1/devices/<device_id>", operation_id="deleteDevice",
            summary="Unpair a NAS (it is told `unpaired`) or forget a phone",
            responses={204: "unpaired", 404: "unknown or not yours"})
def unpair(device_id: str):
    ident = current_identity()
    service().unpair(ident.user_id, device_id)
    return "", 204


@api.get("/devices/v1/devices/<device_id>/packages", operation_id="listDevicePackages",
         summary="The packages a paired NAS reports it runs, with typed settings, values and the latest change",
         responses={200: DevicePackagePage, 404: "unknown NAS or not yours"})
def list_packages(device_id: str):
    return jsonify(service().packages.list(current_identity().user_id, device_id))


@api.get("/devices/v1/devices/<device_id>/packages/<name>", operation_id="getDevicePackage",
         summary="One package of a paired NAS",
         responses={200: DevicePackage, 404: "unknown NAS, package or not yours"})
def get_package(device_id: str, name: str):
    return jsonify(service().packages.get(current_identity().user_id, device_id, name))


@api.put("/devices/v1/devices/<device_id>/packages/<name>/settings", operation_id="putDevicePackageSettings",
         summary="Change settings of a NAS package: checked against its declared types, sent to the NAS, "
                 "pending until it acknowledges (failed after PCLOUD_PACKAGE_ACK_SECONDS)",
         body=PACKAGE_SETTINGS_BODY,
         responses={202: DevicePackage, 400: "invalid_settings (details.problems: [{key, message}])",
                    404: "unknown NAS, package or not yours", 503: "the broker did not take the change"})
def put_package_settings(device_id: str, name: str):
    wanted = json_body()
    return jsonify(service().packages.configure(current_identity().user_id, device_id, name, wanted)), 202
