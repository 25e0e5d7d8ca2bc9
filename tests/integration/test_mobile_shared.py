"""Offline ops, pushes and batch uploads in folders shared with people (issue 19), through the real gateway:
a sharee's ops run in the owner's tree under the same referee, never leave the share, and the sharees' phones
hear about changes there (FCM stand-in) until the share is revoked."""

from __future__ import annotations

import pytest

from push.relay import relay_once
from runtime import groups
from runtime.cursor import decode_cursor
from runtime.ids import utcnow
from tests.fixtures.files import content_hash_of


def _share(owner, folder_id, **body):
    made = owner.call("POST", f"/nodes/{folder_id}/shares", json=body)
    assert made.status_code == 201, made.text
    return made.json()


def _ops(client, user, device_id, *batch):
    answer = client.post("/mobile/v1/ops", headers=user.headers, json={"device_id": device_id, "ops": list(batch)})
    assert answer.status_code == 200, answer.get_data(as_text=True)
    return answer.get_json()["results"]


def _staged(api, node, data: bytes) -> str:
    """An overwrite of `node` negotiated from its rev, its blocks sent: the upload id a commit_upload op names."""
    negotiated = api.negotiate(None, None, data, node_id=node["id"], base_rev=node["rev"])
    assert negotiated.status_code == 201, negotiated.text
    for answer in api.send(negotiated.json()["missing"], data):
        assert answer.status_code in (200, 201, 204), answer.text
    return negotiated.json()["upload_id"]


def _conflicts(client, user) -> list[dict]:
    answer = client.get("/mobile/v1/conflicts", headers=user.headers)
    assert answer.status_code == 200
    return answer.get_json()["items"]


def _changes(client, user, cursor=None) -> dict:
    answer = client.get("/mobile/v1/changes", query_string={"cursor": cursor} if cursor else {}, headers=user.headers)
    assert answer.status_code == 200, answer.get_data(as_text=True)
    return answer.get_json()


def _flush(clients, push_context, drain_push):
    """Send what the set-up wrote to the outbox, before the phones that the test watches exist."""
    relay_once(clients, push_context.lease)
    drain_push()


def _with_phones(h, make_phone) -> dict:
    """Each person's phone (token `tok-<who>`, named after them); returns `household` with `phones`."""
    h["phones"] = {who: make_phone(h[who].user.id, f"tok-{who}", name=who.title())
                   for who in ("owner", "writer", "reader", "stranger")}
    return h


@pytest.fixture
def household(files_api):
    """An owner with a folder shared read-write with `writer`, read-only with `reader`; `stranger` has nothing."""
    owner, writer, reader, stranger = files_api(), files_api(), files_api(), files_api()
    root = owner.root()
    shared = owner.folder(root["id"], "Family")
    plan = owner.upload(shared["id"], "plan.txt", b"plan v1")
    sub = owner.folder(shared["id"], "Sub")
    private = owner.folder(root["id"], "Private")
    share = _share(owner, shared["id"], user_id=writer.user.id, role="write")
    _share(owner, shared["id"], user_id=reader.user.id, role="read")
    mine = writer.folder(writer.root()["id"], "Mine")
    return {"owner": owner, "writer": writer, "reader": reader, "stranger": stranger, "shared": shared,
            "plan": plan, "sub": sub, "private": private, "share": share, "mine": mine}


def test_a_sharees_offline_ops_run_in_the_owners_tree_and_never_leave_the_share(household, make_phone, client,
                                                                                clients):
    h = _with_phones(household, make_phone)
    owner, writer = h["owner"], h["writer"]
    phone = h["phones"]["writer"]
    shared, plan, sub = h["shared"], h["plan"], h["sub"]

    made, renamed = _ops(client, writer.user, phone,
                         {"op_id": "w1", "type": "create_folder", "parent_id": shared["id"], "name": "Trip"},
                         {"op_id": "w2", "type": "rename", "node_id": plan["id"], "name": "plan-2027.txt",
                          "base_rev": plan["rev"]})
    assert made["status"] == "applied" and made["node"]["parent_id"] == shared["id"], made
    assert renamed["status"] == "applied" and renamed["node"]["name"] == "plan-2027.txt", renamed
    trip = owner.call("GET", f"/nodes/{made['node']['id']}").json()
    assert trip["name"] == "Trip" and trip["parent_id"] == shared["id"]  # the owner's node, in the owner's tree
    assert clients.db.nodes.find_one({"_id": trip["id"]})["owner"] == owner.user.id

    edited = _ops(client, writer.user, phone, {"op_id": "w3", "type": "commit_upload",
                                               "upload_id": _staged(writer, renamed["node"], b"plan v2")})[0]
    assert edited["status"] == "applied" and edited["node"]["id"] == plan["id"], edited
    assert owner.download(plan["id"]).content == b"plan v2"

    seq = clients.db.users.find_one({"_id": owner.user.id})["seq"]
    again = _ops(client, writer.user, phone, {"op_id": "w2", "type": "rename", "node_id": plan["id"], "name": "x.txt",
                                              "base_rev": plan["rev"]})[0]
    assert again == renamed  # idempotent by (caller, op_id): the first result, nothing changed
    assert clients.db.users.find_one({"_id": owner.user.id})["seq"] == seq
    # the same op_id from the owner is the owner's own op, not the sharee's
    owners_op = _ops(client, owner.user, h["phones"]["owner"],
                     {"op_id": "w2", "type": "create_folder", "parent_id": shared["id"], "name": "Owner's"})[0]
    assert owners_op["status"] == "applied" and owners_op["node"]["name"] == "Owner's"

    moved, deleted = _ops(client, writer.user, phone,
                          {"op_id": "w4", "type": "move", "node_id": trip["id"], "parent_id": sub["id"],
                           "base_rev": trip["rev"]},
                          {"op_id": "w5", "type": "delete", "node_id": owners_op["node"]["id"],
                           "base_rev": owners_op["node"]["rev"]})
    assert moved["status"] == "applied" and moved["node"]["parent_id"] == sub["id"], moved
    assert deleted["status"] == "applied" and deleted["node"]["trashed_at"], deleted

    refused = _ops(client, writer.user, phone,
                   {"op_id": "x1", "type": "rename", "node_id": shared["id"], "name": "Mine now",
                    "base_rev": shared["rev"]},
                   {"op_id": "x2", "type": "move", "node_id": shared["id"], "parent_id": h["mine"]["id"],
                    "base_rev": shared["rev"]},
                   {"op_id": "x3", "type": "delete", "node_id": shared["id"], "base_rev": shared["rev"]},
                   {"op_id": "x4", "type": "move", "node_id": plan["id"], "parent_id": h["mine"]["id"],
                    "base_rev": edited["node"]["rev"]},
                   {"op_id": "x5", "type": "move", "node_id": h["mine"]["id"], "parent_id": shared["id"],
                    "base_rev": h["mine"]["rev"]},
                   {"op_id": "x6", "type": "move", "node_id": plan["id"], "parent_id": h["private"]["id"],
                    "base_rev": edited["node"]["rev"]},
                   {"op_id": "x7", "type": "move", "node_id": plan["id"], "parent_id": writer.root()["id"],
                    "base_rev": edited["node"]["rev"]})
    assert [(r["status"], r["error"]["code"]) for r in refused] == [
        ("rejected", "share_root"), ("rejected", "share_root"), ("rejected", "share_root"),
        ("rejected", "cross_owner_move"), ("rejected", "cross_owner_move"),
        ("rejected", "not_found"),  # the owner's private folder is not shared with the writer
        ("rejected", "cross_owner_move")]
    assert owner.call("GET", f"/nodes/{plan['id']}").json()["parent_id"] == shared["id"]
    assert writer.call("GET", f"/nodes/{h['mine']['id']}").json()["parent_id"] == writer.root()["id"]
    assert owner.call("GET", f"/nodes/{shared['id']}").json()["name"] == "Family"

    # a read share refuses every write, a stranger's op finds nothing, exactly as for any other user's node
    read_only = _ops(client, h["reader"].user, h["phones"]["reader"],
                     {"op_id": "r1", "type": "rename", "node_id": plan["id"], "name": "r.txt",
                      "base_rev": edited["node"]["rev"]},
                     {"op_id": "r2", "type": "create_folder", "parent_id": shared["id"], "name": "R"},
                     {"op_id": "r3", "type": "delete", "node_id": sub["id"], "base_rev": sub["rev"]})
    assert {(r["status"], r["error"]["code"]) for r in read_only} == {("rejected", "read_only_share")}
    strange = _ops(client, h["stranger"].user, h["phones"]["stranger"],
                   {"op_id": "s1", "type": "rename", "node_id": plan["id"], "name": "s.txt",
                    "base_rev": edited["node"]["rev"]},
                   {"op_id": "s2", "type": "create_folder", "parent_id": shared["id"], "name": "S"},
                   {"op_id": "s3", "type": "delete", "node_id": shared["id"], "base_rev": shared["rev"]},
                   {"op_id": "s4", "type": "commit_upload", "upload_id": _staged(writer, edited["node"], b"v3")})
    assert {(r["status"], r["error"]["code"]) for r in strange} == {("rejected", "not_found")}
    assert owner.call("GET", f"/nodes/{plan['id']}").json()["name"] == "plan-2027.txt"

    # the owner trashes the shared folder: it leaves the writer's tree, their ops on it are refused
    assert owner.call("DELETE", f"/nodes/{shared['id']}").status_code == 200
    gone = _ops(client, writer.user, phone, {"op_id": "w6", "type": "rename", "node_id": sub["id"], "name": "S2",
                                             "base_rev": sub["rev"]})[0]
    assert (gone["status"], gone["error"]["code"]) == ("rejected", "share_trashed")


def test_two_sharers_editing_offline_get_the_referees_outcome_and_both_hear(
        household, make_phone, client, clients, push_context, drain_push, fcm_fake):
    _flush(clients, push_context, drain_push)
    h = _with_phones(household, make_phone)
    owner, writer, plan = h["owner"], h["writer"], h["plan"]
    second = h["stranger"]  # joins through a group: write access for everyone in it
    family = groups.create(clients.db, "family", [second.user.id], created_by=owner.user.id, now=utcnow())
    _share(owner, h["shared"]["id"], group_id=family["_id"], role="write")

    # both phones edited plan.txt offline from the same rev; the writer's phone syncs first
    first_upload = _staged(writer, plan, b"writer's plan")
    second_upload = _staged(second, plan, b"second's plan")
    first = _ops(client, writer.user, h["phones"]["writer"],
                 {"op_id": "e1", "type": "commit_upload", "upload_id": first_upload})[0]
    assert first["status"] == "applied", first
    relay_once(clients, push_context.lease)
    drain_push()
    # the writer's commit tickles everyone else who sees the folder, never the phone that made it
    synced = {token for token in ("tok-owner", "tok-reader", "tok-stranger", "tok-writer")
              if any(m["data"]["type"] == "sync" for m in fcm_fake.messages_for(token))}
    assert synced == {"tok-owner", "tok-reader", "tok-stranger"}
    late = _ops(client, second.user, h["phones"]["stranger"],
                {"op_id": "e1", "type": "commit_upload", "upload_id": second_upload})[0]
    assert late["status"] == "conflict" and late["conflict"]["type"] == "edit_edit", late
    assert late["conflict"]["resolution"] == "conflicted_copy"
    assert late["node"]["name"].startswith("plan (conflicted copy from Stranger ")
    assert late["node"]["parent_id"] == h["shared"]["id"]
    assert owner.download(plan["id"]).content == b"writer's plan"
    assert owner.download(late["node"]["id"]).content == b"second's plan"
    renames = [_ops(client, who.user, h["phones"][name], {"op_id": "n1", "type": "rename", "node_id": h["sub"]["id"],
                                                          "name": f"Sub of {name}", "base_rev": h["sub"]["rev"]})[0]
               for who, name in ((writer, "writer"), (second, "stranger"))]
    assert renames[0]["status"] == "applied"
    assert (renames[1]["status"], renames[1]["conflict"]["type"]) == ("conflict", "modify_modified")
    assert owner.call("GET", f"/nodes/{h['sub']['id']}").json()["name"] == "Sub of writer"

    # the conflicts are the owner's (their tree) and the second sharer's (their ops); not the first writer's
    ids = [late["conflict"]["id"], renames[1]["conflict"]["id"]]
    for api in (owner, second):
        listed = _conflicts(client, api.user)
        assert sorted(c["id"] for c in listed) == sorted(ids)
        assert {(c["owner_id"], c["actor_id"]) for c in listed} == {(owner.user.id, second.user.id)}
    assert _conflicts(client, writer.user) == []

    relay_once(clients, push_context.lease)
    drain_push()
    for token in ("tok-owner", "tok-stranger"):
        pushed = sorted(m["data"]["conflict_id"] for m in fcm_fake.messages_for(token)
                        if m["data"]["type"] == "conflict")
        assert pushed == sorted(ids), token
    assert [m for m in fcm_fake.messages_for("tok-writer") if m["data"]["type"] == "conflict"] == []


def test_a_sharees_phone_is_tickled_by_the_owners_changes_until_the_share_is_revoked(
        household, make_phone, client, clients, push_context, drain_push, fcm_fake):
    _flush(clients, push_context, drain_push)
    h = _with_phones(household, make_phone)
    owner, writer = h["owner"], h["writer"]
    tickles = lambda token: [m["data"] for m in fcm_fake.messages_for(token) if m["data"]["type"] == "sync"]  # noqa: E731
    cursor = _changes(client, writer.user)["cursor"]

    owner.upload(h["private"]["id"], "diary.txt", b"not shared")
    relay_once(clients, push_context.lease)
    drain_push()
    assert tickles("tok-owner") and tickles("tok-writer") == [] and tickles("tok-reader") == []

    changed = owner.upload(h["sub"]["id"], "new.txt", b"for the family")
    relay_once(clients, push_context.lease)
    drain_push()
    for token, user in (("tok-writer", writer.user), ("tok-reader", h["reader"].user)):
        assert len(tickles(token)) == 1, token
        # the tickle carries the sharee's own journal position: a plain cursor of their own feed
        assert decode_cursor(tickles(token)[0]["cursor"]) == clients.db.users.find_one({"_id": user.id})["seq"]
    assert tickles("tok-stranger") == []
    page = _changes(client, writer.user, cursor)
    assert changed["id"] in [c["id"] for c in page["changes"]]  # the feed from the stored cursor shows it

    # revoking tickles the writer once (the folder leaves their feed), then their phone hears nothing more
    writer_deliveries = {"device_id": h["phones"]["writer"]}
    before = clients.db.push_deliveries.count_documents(writer_deliveries)
    assert owner.call("DELETE", f"/shares/{h['share']['id']}").status_code == 200
    relay_once(clients, push_context.lease)
    revoked = clients.db.push_deliveries.count_documents(writer_deliveries)
    assert revoked == before + 1  # sent at once, or waiting for the phone's 2-s slot
    assert [g["id"] for g in _changes(client, writer.user, page["cursor"])["changes"]] == [h["shared"]["id"]]
    owner.upload(h["sub"]["id"], "after.txt", b"after the revoke")
    relay_once(clients, push_context.lease)
    drain_push()
    assert clients.db.push_deliveries.count_documents(writer_deliveries) == revoked
    # the reader still shares the folder: their phone has a delivery for it (sent, or waiting for its 2-s slot)
    assert clients.db.push_deliveries.count_documents({"device_id": h["phones"]["reader"]}) == 2

    # a new share tickles its grantee's phones (and never the owner's for it)
    owner_deliveries = clients.db.push_deliveries.count_documents({"device_id": h["phones"]["owner"]})
    _share(owner, h["sub"]["id"], email=h["stranger"].user.email, role="read")
    relay_once(clients, push_context.lease)
    drain_push()
    assert len(tickles("tok-stranger")) == 1
    assert decode_cursor(tickles("tok-stranger")[0]["cursor"]) == \
        clients.db.users.find_one({"_id": h["stranger"].user.id})["seq"]
    assert clients.db.push_deliveries.count_documents({"device_id": h["phones"]["owner"]}) == owner_deliveries


def test_batch_uploads_into_a_shared_folder_run_as_the_owner(household):
    h = household
    owner, writer, reader = h["owner"], h["writer"], h["reader"]
    shared, sub = h["shared"], h["sub"]
    secret = b"the owner's private bytes"
    owner.upload(h["private"]["id"], "known.bin", secret)
    items = [{"parent_id": shared["id"], "name": "a.txt", "size": 5, "blocks": _blocks(b"aaaaa")},
             {"parent_id": sub["id"], "name": "known.bin", "size": len(secret), "blocks": _blocks(secret),
              "commit": "if_complete"},
             {"parent_id": h["private"]["id"], "name": "sneak.txt", "size": 1, "blocks": _blocks(b"s")},
             {"parent_id": h["mine"]["id"], "name": "own.txt", "size": 3, "blocks": _blocks(b"own")}]
    answer = writer.call("POST", "/uploads/batch", json={"uploads": items})
    assert answer.status_code == 200, answer.text
    a, known, sneak, own = answer.json()["results"]
    assert a["status"] == 201 and len(a["missing"]) == 1
    # the owner holds these bytes, but the writer never sent them: they must (dedup tells them nothing)
    assert known["status"] == 201 and len(known["missing"]) == 1 and known["committed"] is False
    assert (sneak["status"], sneak["error"]["code"]) == (404, "not_found")
    assert own["status"] == 201
    for answer_, data in ((a, b"aaaaa"), (known, secret), (own, b"own")):
        assert all(r.status_code in (200, 201, 204) for r in writer.send(answer_["missing"], data))
    committed = writer.call("POST", "/uploads/commit",
                            json={"upload_ids": [a["upload_id"], known["upload_id"], own["upload_id"]]})
    assert [r["status"] for r in committed.json()["results"]] == [201, 201, 201], committed.text
    a_node, known_node, own_node = (r["node"] for r in committed.json()["results"])
    assert owner.download(a_node["id"]).content == b"aaaaa"
    assert owner.download(known_node["id"]).content == secret
    assert writer.download(own_node["id"]).content == b"own"
    assert owner.call("GET", f"/nodes/{own_node['id']}").status_code == 404  # the writer's own tree stays theirs

    # what the writer has proven (their own file) dedups into the share, and commit=if_complete commits at once
    single = writer.negotiate(shared["id"], "again.txt", b"own", commit="if_complete")
    assert single.status_code == 201 and single.json()["missing"] == [] and single.json()["committed"] is True
    assert single.json()["node"]["content_hash"] == content_hash_of(b"own")
    assert owner.download(single.json()["node"]["id"]).content == b"own"

    refused = reader.call("POST", "/uploads/batch", json={"uploads": items[:1]}).json()["results"]
    assert [(r["status"], r["error"]["code"]) for r in refused] == [(403, "read_only_share")]
    pending = writer.call("POST", "/uploads/batch", json={"uploads": [
        {"parent_id": shared["id"], "name": "late.txt", "size": 4, "blocks": _blocks(b"late")}]}).json()["results"][0]
    writer.send(pending["missing"], b"late")
    _share(owner, shared["id"], user_id=writer.user.id, role="read")  # the owner makes it read-only meanwhile
    late = writer.call("POST", "/uploads/commit", json={"upload_ids": [pending["upload_id"]]}).json()["results"]
    assert [(r["status"], r["error"]["code"]) for r in late] == [(403, "read_only_share")]
    names = [c["name"] for c in owner.call("GET", f"/nodes/{shared['id']}/children").json()["items"]]
    assert "late.txt" not in names and {"a.txt", "again.txt"} <= set(names)


def _blocks(data: bytes) -> list[dict]:
    from tests.fixtures.files import blocks_of

    return blocks_of(data)
