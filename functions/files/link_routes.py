"""HTTP for the owner's side of share links (issue 19): create, list, show, revoke. The public side is public.py."""

from __future__ import annotations

from datetime import UTC, datetime

from flask import jsonify

from functions.files import links
from functions.files.sharing_schemas import Link, LinkPage, LinksQuery, NewLink
from runtime.app import clients
from runtime.errors import BadRequest
from runtime.identity import current_identity
from runtime.schemas import Api, body, query

api = Api("files_links", tag="files", import_name=__name__)


def _json(doc: dict) -> dict:
    return links.link_json(doc, clients().settings.public_url)


def _time(value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise BadRequest("expires_at is an ISO 8601 time", code="invalid_expiry") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


@api.post("/files/v1/nodes/<node_id>/links", operation_id="createLink",
          summary="A read-only public link to a file or a folder's subtree (expiry, password optional)",
          body=NewLink, body_required=False,
          responses={201: Link, 400: "invalid_expiry, invalid_password", 404: "no such node, or not yours"})
def create_link(node_id: str):
    c = clients()
    new = body(NewLink) or NewLink()
    doc = links.create(c.db, current_identity().user_id, node_id, expires_at=_time(new.expires_at),
                       expires_in=new.expires_in, password=new.password)
    return jsonify(_json(doc)), 201


@api.get("/files/v1/links", operation_id="listLinks", summary="The caller's share links (every state), paged by id",
         query=LinksQuery, responses={200: LinkPage})
def list_links():
    c = clients()
    q = query(LinksQuery)
    docs, cursor = links.page(c.db, current_identity().user_id, q.node_id, q.cursor, q.limit or 100)
    return jsonify({"items": [_json(d) for d in docs], "next_cursor": cursor})


@api.get("/files/v1/links/<link_id>", operation_id="getLink", summary="One share link with its download count",
         responses={200: Link, 404: "no such link, or not yours"})
def get_link(link_id: str):
    return jsonify(_json(links.get(clients().db, current_identity().user_id, link_id)))


@api.delete("/files/v1/links/<link_id>", operation_id="revokeLink",
            summary="Revoke a share link: it answers 410 link_revoked from now on",
            responses={200: Link, 404: "no such link, or not yours"})
def revoke_link(link_id: str):
    return jsonify(_json(links.revoke(clients().db, current_identity().user_id, link_id)))
