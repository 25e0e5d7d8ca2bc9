"""HTTP for sharing folders with people (issue 19): the owner shares and revokes, the sharee lists what reaches them.
Access to the shared nodes themselves goes through the ordinary node routes (routes.py asks shares.acting_owner)."""

from __future__ import annotations

from flask import jsonify

from functions.files import service, shares
from functions.files.sharing_schemas import NewShare, Share, SharedPage, SharePage
from functions.files.tree import now_ms
from runtime.app import clients
from runtime.identity import current_identity
from runtime.schemas import Api, body

api = Api("files_shares", tag="files", import_name=__name__)


@api.post("/files/v1/nodes/<node_id>/shares", operation_id="shareFolder",
          summary="Share a folder with a user or a group, read or read-write", body=NewShare,
          responses={201: Share, 400: "invalid_grantee, invalid_role, root_immutable",
                     404: "no such node, or not yours; unknown_user, unknown_group", 409: "not_a_folder, trashed"})
def share_folder(node_id: str):
    c = clients()
    owner = current_identity().user_id
    new = body(NewShare)
    folder = service.get_node(c.db, owner, node_id)
    doc = shares.create(c.db, owner, folder, user_id=new.user_id, email=new.email, group_id=new.group_id,
                        role=new.role, now=now_ms())
    return jsonify(shares.share_json(doc)), 201


@api.get("/files/v1/nodes/<node_id>/shares", operation_id="listFolderShares",
         summary="Who a folder of the caller's is shared with", responses={200: SharePage, 404: "no such node"})
def folder_shares(node_id: str):
    c = clients()
    owner = current_identity().user_id
    folder = service.get_node(c.db, owner, node_id)
    return jsonify({"items": [shares.share_json(d) for d in shares.for_folder(c.db, owner, folder["_id"])],
                    "next_cursor": None})


@api.delete("/files/v1/shares/<share_id>", operation_id="revokeShare",
            summary="Stop sharing: the folder leaves the sharee's tree and feed",
            responses={200: Share, 404: "no such share, or not yours"})
def revoke_share(share_id: str):
    c = clients()
    return jsonify(shares.share_json(shares.revoke(c.db, current_identity().user_id, share_id)))


@api.get("/files/v1/shared", operation_id="listSharedWithMe",
         summary="Folders shared with the caller (directly or through a group), as they appear at their root",
         responses={200: SharedPage})
def shared_with_me():
    c = clients()
    caller = current_identity().user_id
    items = []
    for share in shares.shared_with(c.db, caller):
        folder = c.db.nodes.find_one({"_id": share["folder_id"], "owner": share["owner"]}, {"blocks": 0})
        if folder is None or folder.get("purged") or folder.get("trashed_at") is not None:
            continue
        items.append({"share": shares.share_json(share),
                      "folder": shares.mount_view(c.db, caller, service.node_json(folder), folder)})
    return jsonify({"items": items, "next_cursor": None})
