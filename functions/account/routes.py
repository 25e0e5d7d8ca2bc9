"""HTTP side of /account/v1: who may call (first-party only), parse, call AccountService, shape JSON."""

from __future__ import annotations

from flask import jsonify

from functions.account.schemas import Profile, ProfilePatch, SessionPage, SignedOutEverywhere
from functions.account.service import FIRST_PARTY, AccountService
from runtime.app import clients, settings
from runtime.errors import Forbidden
from runtime.identity import Identity, current_identity
from runtime.schemas import Api, body

api = Api("account", import_name=__name__)
FIRST_PARTY_ONLY = "insufficient_scope: only the portal and the PCloud phone app manage an account"


def _caller() -> Identity:
    ident = current_identity()
    if ident.app is not None or ident.client_id != FIRST_PARTY:
        raise Forbidden("only the portal and the PCloud phone app manage an account", code="insufficient_scope",
                        details={"required": "first-party client"})
    return ident


def _service() -> AccountService:
    c = clients()
    return AccountService(c.db, settings(), c.mongo)


def _deliver(service: AccountService, deliveries: list[str]) -> None:
    """Siblings hear of the ended sessions now; what fails is retried by the SSO's periodic job."""
    if deliveries:
        service.sso.deliver_backchannel(clients().keys.sign, deliveries, timeout=3.0)


@api.get("/account/v1/me", operation_id="getAccount", summary="The caller's profile and linked sign-in providers",
         responses={200: Profile, 403: FIRST_PARTY_ONLY})
def get_me():
    return jsonify(_service().profile(_caller().user_id))


@api.patch("/account/v1/me", operation_id="updateAccount", summary="Change the caller's display name",
           body=ProfilePatch, responses={200: Profile, 400: "invalid_name", 403: FIRST_PARTY_ONLY})
def patch_me():
    ident = _caller()
    return jsonify(_service().rename(ident.user_id, body(ProfilePatch).name))


@api.get("/account/v1/sessions", operation_id="listAccountSessions",
         summary="Where the caller is signed in: browsers (SSO sessions) and phones (refresh-token families)",
         responses={200: SessionPage, 403: FIRST_PARTY_ONLY})
def list_sessions():
    ident = _caller()
    return jsonify(_service().sessions(ident.user_id, ident.session_id))


@api.delete("/account/v1/sessions/<session_id>", operation_id="endAccountSession",
            summary="End one browser session (its siblings get back-channel logout) or revoke one phone sign-in",
            responses={204: "ended", 403: FIRST_PARTY_ONLY, 404: "no such live session of the caller"})
def end_session(session_id: str):
    ident = _caller()
    service = _service()
    _deliver(service, service.end_session(ident.user_id, session_id))
    return "", 204


@api.post("/account/v1/sign-out-everywhere", operation_id="signOutEverywhere",
          summary="End every browser session and revoke every refresh-token family of the caller (this one too)",
          responses={200: SignedOutEverywhere, 403: FIRST_PARTY_ONLY})
def sign_out_everywhere():
    ident = _caller()
    service = _service()
    counts, deliveries = service.sign_out_everywhere(ident.user_id)
    _deliver(service, deliveries)
    return jsonify(counts)
