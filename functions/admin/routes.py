"""HTTP side of the admin API: parse, call AdminService, shape JSON."""

from __future__ import annotations

from flask import jsonify

from functions.admin.schemas import Group, GroupPage, NewGroup, NewMember, PageQuery, User, UserPage, UserPatch
from functions.admin.service import AdminService
from runtime.app import clients, page_params
from runtime.errors import Forbidden
from runtime.identity import current_identity
from runtime.schemas import Api, body

api = Api("admin", import_name=__name__)
FORBIDDEN = "forbidden: not an admin"


def _service() -> AdminService:
    """Only for admins; the gateway already asked for the `admin` scope, this holds for direct deployments."""
    if not current_identity().is_admin:
        raise Forbidden("only an admin may do this", code="forbidden", details={"required": "admin"})
    c = clients()
    return AdminService(c.db, c.mongo)


@api.get("/admin/v1/users", operation_id="listUsers", summary="Every account, by id", query=PageQuery,
         responses={200: UserPage, 403: FORBIDDEN})
def list_users():
    service = _service()
    cursor, limit = page_params(default_limit=100, max_limit=500)
    return jsonify(service.list_users(cursor, limit))


@api.patch("/admin/v1/users/<user_id>", operation_id="updateUser",
           summary="Change an account's role or disable it (its refresh tokens are revoked at once)",
           body=UserPatch, responses={200: User, 400: "invalid_role", 403: FORBIDDEN, 404: "no such user",
                                      409: "last_admin: the last admin cannot demote or disable themselves"})
def update_user(user_id: str):
    service = _service()
    patch = body(UserPatch)
    return jsonify(service.update_user(user_id, role=patch.role, disabled=patch.disabled))


@api.get("/admin/v1/groups", operation_id="listGroups", summary="Every group", query=PageQuery,
         responses={200: GroupPage, 403: FORBIDDEN})
def list_groups():
    service = _service()
    cursor, limit = page_params(default_limit=100, max_limit=500)
    return jsonify(service.list_groups(cursor, limit))


@api.post("/admin/v1/groups", operation_id="createGroup", summary="Create a group (a household)", body=NewGroup,
          responses={201: Group, 400: "invalid_name", 403: FORBIDDEN, 404: "user_not_found",
                     409: "name_taken"})
def create_group():
    service = _service()
    new = body(NewGroup)
    return jsonify(service.create_group(current_identity().user_id, new.name, new.members)), 201


@api.get("/admin/v1/groups/<group_id>", operation_id="getGroup", summary="A group and its members",
         responses={200: Group, 403: FORBIDDEN, 404: "no such group"})
def get_group(group_id: str):
    return jsonify(_service().get_group(group_id))


@api.delete("/admin/v1/groups/<group_id>", operation_id="deleteGroup", summary="Delete a group",
            responses={204: "deleted", 403: FORBIDDEN, 404: "no such group"})
def delete_group(group_id: str):
    _service().delete_group(group_id)
    return "", 204


@api.post("/admin/v1/groups/<group_id>/members", operation_id="addGroupMember", summary="Add a member",
          body=NewMember, responses={200: Group, 403: FORBIDDEN, 404: "no such group or user"})
def add_member(group_id: str):
    service = _service()
    return jsonify(service.add_member(group_id, body(NewMember).user_id))


@api.delete("/admin/v1/groups/<group_id>/members/<user_id>", operation_id="removeGroupMember",
            summary="Remove a member", responses={200: Group, 403: FORBIDDEN, 404: "no such group"})
def remove_member(group_id: str, user_id: str):
    return jsonify(_service().remove_member(group_id, user_id))
