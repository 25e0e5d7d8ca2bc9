"""Admin rules over users and groups (no Flask). The collections belong to runtime/users.py,
runtime/groups.py and runtime/refresh.py; this module decides what an admin may do with them."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from runtime import groups, refresh, users
from runtime.errors import BadRequest, Conflict, NotFound
from runtime.ids import iso, utcnow
from runtime.mongo import transaction


def user_view(doc: dict, group_ids: list[str]) -> dict:
    return {"id": doc["_id"], "email": doc.get("email"), "name": doc.get("name"),
            "role": doc.get("role") or "member", "disabled": bool(doc.get("disabled")),
            "created_at": iso(doc.get("created_at")), "groups": group_ids}


def group_view(doc: dict) -> dict:
    return {"id": doc["_id"], "name": doc["name"], "members": doc.get("members", []),
            "created_at": iso(doc.get("created_at"))}


class AdminService:
    def __init__(self, db, mongo, clock: Callable[[], datetime] = utcnow):
        self.db, self.mongo, self.clock = db, mongo, clock

    # --- users ------------------------------------------------------------------------------------------
    def list_users(self, cursor: str | None, limit: int) -> dict:
        docs, more = users.page(self.db, cursor, limit)
        member_of = groups.memberships(self.db, [d["_id"] for d in docs])
        return {"items": [user_view(d, member_of[d["_id"]]) for d in docs],
                "next_cursor": docs[-1]["_id"] if more and docs else None}

    def update_user(self, user_id: str, role: str | None = None, disabled: bool | None = None) -> dict:
        """Change role and/or disabled. Taking away the last active admin (the last admin demoting or
        disabling themselves) is 409 `last_admin`; disabling revokes every refresh token of the account."""
        now = self.clock()
        changed = {}

        def work(session):
            doc = users.get_for_update(self.db, user_id, session)
            if doc is None:
                raise NotFound("no such user", code="not_found")
            was_admin = (doc.get("role") or "member") == "admin" and not doc.get("disabled")
            stays_admin = (role or doc.get("role") or "member") == "admin" and not \
                (disabled if disabled is not None else doc.get("disabled"))
            if was_admin and not stays_admin:
                users.guard_admins(self.db, session)
                if users.other_active_admins(self.db, user_id, session) == 0:
                    raise Conflict("this is the last admin: make someone else admin first", code="last_admin")
            if role is not None and role != (doc.get("role") or "member"):
                users.set_role(self.db, user_id, role, session=session)
            if disabled is not None and disabled != bool(doc.get("disabled")):
                users.set_disabled(self.db, user_id, disabled, now, session=session)
                changed["disabled"] = disabled

        transaction(self.mongo, work)
        if changed.get("disabled"):
            refresh.revoke_user(self.db, user_id, now)
        doc = users.get(self.db, user_id)
        return user_view(doc, groups.group_ids_for(self.db, user_id))

    # --- groups -----------------------------------------------------------------------------------------
    def _existing_users(self, ids: list[str]) -> None:
        missing = [u for u in dict.fromkeys(ids) if users.get(self.db, u) is None]
        if missing:
            raise NotFound("no such user", code="user_not_found", details={"user_ids": missing})

    def create_group(self, actor: str, name: str, members: list[str]) -> dict:
        name = name.strip()
        if not name:
            raise BadRequest("a group needs a name", code="invalid_name")
        self._existing_users(members)
        try:
            return group_view(groups.create(self.db, name, members, actor, self.clock()))
        except groups.NameTaken:
            raise Conflict(f"a group named {name!r} exists", code="name_taken") from None

    def list_groups(self, cursor: str | None, limit: int) -> dict:
        docs, more = groups.page(self.db, cursor, limit)
        return {"items": [group_view(d) for d in docs], "next_cursor": docs[-1]["_id"] if more and docs else None}

    def get_group(self, group_id: str) -> dict:
        doc = groups.get(self.db, group_id)
        if doc is None:
            raise NotFound("no such group", code="not_found")
        return group_view(doc)

    def add_member(self, group_id: str, user_id: str) -> dict:
        self.get_group(group_id)
        self._existing_users([user_id])
        doc = groups.add_member(self.db, group_id, user_id, self.clock())
        if doc is None:
            raise NotFound("no such group", code="not_found")
        return group_view(doc)

    def remove_member(self, group_id: str, user_id: str) -> dict:
        doc = groups.remove_member(self.db, group_id, user_id, self.clock())
        if doc is None:
            raise NotFound("no such group", code="not_found")
        return group_view(doc)

    def delete_group(self, group_id: str) -> None:
        if not groups.delete(self.db, group_id):
            raise NotFound("no such group", code="not_found")
