"""HTTP for a person's own cloud drives as replica stores (issue 19): connect a Google Drive by OAuth, list and
disconnect. Logic in clouds.py; a connection is then the store `gdrive:<id>` in the owner's folder policies."""

from __future__ import annotations

from typing import Literal

from flask import jsonify, redirect, request
from pydantic import BaseModel, Field

from functions.files import clouds, storage
from runtime.app import clients
from runtime.identity import current_identity, optional_identity
from runtime.schemas import Api, Body, body

api = Api("files-clouds", tag="files", import_name=__name__)


class CloudConnection(BaseModel):
    """One connected drive; use `store` in a folder policy's `stores`."""

    id: str
    provider: Literal["google-drive"]
    store: str = Field(description="the store name for folder policies: gdrive:<id>")
    account: str | None = Field(description="the Google account's email")
    state: Literal["connected", "revoked", "unavailable"] = Field(
        description="revoked: Google refuses our tokens (reconnect); unavailable: the drive did not answer lately")
    connected_at: str | None
    revoked_at: str | None
    last_error: str | None


class CloudList(BaseModel):
    clouds: list[CloudConnection]


class ConnectRequest(Body):
    """Where the browser comes back to once Google has answered (a path or URL on this server)."""

    model_config = {"extra": "forbid"}
    error_codes = {"": "invalid_request", "return_to": "invalid_return_to"}
    return_to: str | None = Field(None, max_length=2000)


class ConnectStart(BaseModel):
    authorize_url: str = Field(description="send the person's browser here (Google's consent page)")
    expires_at: str = Field(description="the link works once, until then")
    redirect_uri: str = Field(description="where Google sends the browser back (register it with the client id)")


@api.get("/files/v1/clouds", operation_id="listClouds", summary="The caller's connected cloud drives",
         responses={200: CloudList})
def list_clouds():
    c = clients()
    store = c.store
    healthy = getattr(store, "healthy", None)
    return jsonify({"clouds": clouds.connections(c.db, current_identity().user_id, healthy)})


@api.post("/files/v1/clouds/google-drive/connect", operation_id="connectGoogleDrive",
          summary="Start connecting a Google Drive: the authorize URL (state and PKCE) to open in a browser",
          body=ConnectRequest, body_required=False,
          responses={200: ConnectStart, 400: "invalid_return_to", 501: "cloud_not_configured"})
def connect():
    c = clients()
    asked = body(ConnectRequest) or ConnectRequest()
    return jsonify(clouds.start(c.db, c.settings, current_identity().user_id, asked.return_to))


@api.get("/files/v1/clouds/google-drive/callback", operation_id="googleDriveCallback",
         summary="Where Google sends the browser back (no sign-in needed: the one-time state names the person; a "
                 "browser signed in as someone else is refused)",
         responses={200: CloudConnection, 302: "to return_to with cloud=<id> or cloud_error=<code>",
                    403: "account_mismatch",
                    400: "invalid_state, access_denied, scope_missing, connect_failed", 501: "cloud_not_configured",
                    503: "provider_unavailable"})
def callback():
    c = clients()
    params = {k: v for k, v in request.args.items() if k in ("code", "state", "error")}
    try:
        who = optional_identity()
        doc, back = clouds.finish(c.db, c.keys, c.settings, params, who.user_id if who is not None else None)
    except clouds.ConnectFailed as exc:
        if exc.return_to:
            return redirect(clouds.result_url(exc.return_to, cloud_error=exc.code), 302)
        raise
    storage.connected(c, doc)
    if back:
        return redirect(clouds.result_url(back, cloud=doc["_id"], state="connected"), 302)
    return jsonify(clouds.shape(doc))


@api.delete("/files/v1/clouds/<connection_id>", operation_id="disconnectCloud",
            summary="Disconnect a drive: tokens revoked and forgotten; folders naming it report degraded",
            responses={204: "disconnected", 404: "no such connection, or not yours"})
def disconnect(connection_id: str):
    c = clients()
    clouds.disconnect(c.db, c.keys, c.settings, current_identity().user_id, connection_id)
    storage.disconnected(c, clouds.store_name(connection_id))
    return "", 204
