"""HTTP for storage policies (issue 19): a folder's replica and encryption policy, and the admin's view of
placement, repair and scrub. Logic in policy.py / replication.py; wiring in storage.py."""

from __future__ import annotations

from typing import Literal

from flask import jsonify
from pydantic import BaseModel, Field

from functions.files import storage
from runtime.app import clients
from runtime.errors import Forbidden
from runtime.identity import current_identity
from runtime.schemas import Api, Body, body

api = Api("files-storage", import_name=__name__)
_FORBIDDEN = "forbidden: not an admin"


class PolicyFields(BaseModel):
    replicas: int | None = Field(None, description="copies of every block (null: inherited; the root's is 1)")
    stores: list[str] | None = Field(None, description="store names the copies may use, in preference order "
                                                      "(null: inherited; the root's is any store)")
    encryption: Literal["none", "at_rest"] | None = Field(None, description="null: inherited; the root's is none")


class PolicyChange(Body):
    """A folder's own policy; a field left out or null is inherited from the nearest folder above that sets it."""

    model_config = {"extra": "forbid"}
    error_codes = {"": "invalid_policy", "replicas": "invalid_policy", "stores": "invalid_policy",
                   "encryption": "invalid_policy"}
    replicas: int | None = Field(None, ge=1)
    stores: list[str] | None = None
    encryption: Literal["none", "at_rest"] | None = None


class StoreProblem(BaseModel):
    """A store the policy names that cannot take its copies now: the policy is degraded, nothing fails."""

    store: str
    state: Literal["unavailable", "revoked", "disconnected"]


class Policy(BaseModel):
    """A node's own storage policy, what it comes to with inheritance, and where each field comes from."""

    node_id: str
    own: PolicyFields
    effective: PolicyFields
    inherited_from: dict[str, str | None] = Field(description="per field: the folder that sets it (null: default)")
    stores_available: list[str] = Field(description="the configured stores, then the caller's drives (gdrive:<id>)")
    store_problems: list[StoreProblem] = Field(default_factory=list,
                                               description="stores the policy names that hold it back now")


def _admin() -> None:
    if not current_identity().is_admin:
        raise Forbidden("only an admin may do this", code="forbidden", details={"required": "admin"})


@api.get("/files/v1/nodes/<node_id>/policy", operation_id="getStoragePolicy",
         summary="A node's storage policy (replicas, stores, encryption), own and inherited",
         responses={200: Policy, 404: "no such node, or not yours"})
def get_policy(node_id: str):
    return jsonify(storage.policy_answer(clients(), current_identity().user_id, node_id))


@api.put("/files/v1/nodes/<node_id>/policy", operation_id="setStoragePolicy",
         summary="Set a folder's storage policy; its files converge in the background", body=PolicyChange,
         responses={200: Policy, 400: "invalid_policy, unknown_store (details.known), too_many_replicas",
                    404: "no such node, or not yours", 409: "not_a_folder"})
def put_policy(node_id: str):
    change = body(PolicyChange).model_dump()
    return jsonify(storage.policy_answer(clients(), current_identity().user_id, node_id, change))


@api.get("/files/v1/storage", operation_id="getStorageStatus",
         summary="Admin: stores, blocks by placement state, repair lag and backlog, repair and scrub totals",
         responses={200: {"description": "the status"}, 403: _FORBIDDEN})
def status():
    _admin()
    return jsonify(storage.summary(clients()))


@api.post("/files/v1/storage/repair", operation_id="runStorageRepair",
          summary="Admin: run the placement worker now (events, policy changes, repair, trim)",
          responses={200: {"description": "what the run did"}, 403: _FORBIDDEN})
def repair_now():
    _admin()
    return jsonify(storage.run_placement(clients()))


@api.post("/files/v1/storage/scrub", operation_id="runStorageScrub",
          summary="Admin: re-hash the copies due for a scrub now", responses={200: {"description": "counts"},
                                                                              403: _FORBIDDEN})
def scrub_now():
    _admin()
    return jsonify(storage.run_scrub(clients()))


@api.post("/files/v1/storage/keys/rotate", operation_id="rotateStorageKey",
          summary="Admin: a new key-encryption key; every user's data key re-wrapped, no block rewritten",
          responses={200: {"description": "kek_version and rewrapped"}, 403: _FORBIDDEN})
def rotate_key():
    _admin()
    return jsonify(storage.rotate_key(clients()))
