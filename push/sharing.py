"""Who besides its owner hears about a change: the people a folder above the changed node is shared with (issue 19).

A sharee's reads and writes run in the owner's tree, so every change there — through REST, mobile ops or a batch
upload, by the owner or by any sharee — is an outbox event of the owner's. The relay asks `others()` once per
pass for the extra recipients of the pass's events:
- a sync tickle (`node.changed`, `file.committed`) reaches every person a folder at or above the node is shared
  with (users, and the members of groups, read at the time of the pass); the tickle carries *their* own journal
  position as its cursor (a plain cursor of their feed; clients sync from their stored cursor, which holds the
  shared folders' positions);
- a conflict push reaches the sharee whose op caused it (`actor` in the event);
- `share.changed` (a folder shared with someone, its role changed, or revoked) tickles the grantee's phones — the
  user's, or the group members' — and not the owner's: the folder arrives in, or leaves, their feed.

Cost: the shares of the pass's owners come from a short per-process cache (SHARES_SECONDS), refreshed with one
indexed query for the owners it lacks — so an owner who shares nothing costs nothing most passes; for owners who
share, their nodes' ancestors are read a level at a time for the whole pass ($in), plus one query each for group
members and journal positions. A `share.changed` event (sharing, a role change, revoking) drops its owner's
entry in the pass that carries it, and the relay claims events in the order they were written, so revoking stops
the pushes from the change right after it; group membership is read per pass (leaving a group counts at once).
Another relay process that did not carry the event sees a new or revoked share within SHARES_SECONDS.
"""

from __future__ import annotations

import time
from collections import defaultdict

from runtime import folder_shares, groups, users

MAX_DEPTH = 4096
SHARES_SECONDS = 2.0
CACHE_MAX = 10_000  # owners remembered at most; beyond, the expired ones are dropped
_shares_cache: dict[tuple[str, str], tuple[float, list[dict]]] = {}  # (database, owner) -> (until, their shares)
SYNC_EVENTS = ("node.changed", "file.committed")
NOT_FOR_THE_OWNER = ("share.changed",)


def others(db, planned: list[tuple[dict, object]], sync_intent) -> list[tuple[dict, object, str]]:
    """Extra `(event, intent, user_id)` deliveries for `planned` `(event, intent)` pairs beyond each event's owner.

    `sync_intent(seq, origin_device_id)` makes a sync tickle (push.service passes its own maker)."""
    extra: list[tuple[dict, object, str]] = []
    wanted: dict[str, set[str]] = defaultdict(set)  # owner -> changed node ids
    granted = [(event, payload) for event, payload in ((e, e.get("payload") or {}) for e, _ in planned
                                                       if e["type"] == "share.changed")]
    for event, _ in granted:  # the owner's shares changed: read them again below
        _shares_cache.pop((db.name, event.get("user_id")), None)
    if granted:
        extra += _grantees(db, granted, sync_intent)
    for event, intent in planned:
        owner, payload = event.get("user_id"), event.get("payload") or {}
        if intent.kind == "conflict":
            actor = payload.get("actor")
            if isinstance(actor, str) and actor and actor != owner:
                extra.append((event, intent, actor))
        elif intent.kind == "sync" and event["type"] in SYNC_EVENTS and isinstance(payload.get("node_id"), str):
            wanted[owner].add(payload["node_id"])
    if not wanted:
        return extra
    audience = sharees_of(db, wanted)
    if not audience:
        return extra
    positions = users.journal_positions(db, {u for people in audience.values() for u in people})
    for event, intent in planned:
        if intent.kind != "sync" or event["type"] not in SYNC_EVENTS:
            continue
        owner, payload = event.get("user_id"), event.get("payload") or {}
        for person in sorted(audience.get((owner, payload.get("node_id")), ())):
            if person in positions:
                extra.append((event, sync_intent(positions[person], payload.get("device_id")), person))
    return extra


def _grantees(db, granted: list[tuple[dict, dict]], sync_intent) -> list[tuple[dict, object, str]]:
    members = groups.members_of(db, {p.get("grantee_id") for _, p in granted if p.get("grantee_type") == "group"})
    people = {event["_id"]: set(members.get(p.get("grantee_id"), ()) if p.get("grantee_type") == "group"
                                else [p.get("grantee_id")]) - {event.get("user_id"), None}
              for event, p in granted}
    positions = users.journal_positions(db, {u for found in people.values() for u in found})
    return [(event, sync_intent(positions[person], None), person) for event, _ in granted
            for person in sorted(people[event["_id"]]) if person in positions]


def shares_of(db, owners) -> list[dict]:
    """The shares the `owners` made, from the cache where it is recent enough."""
    now = time.monotonic()
    missing = [o for o in owners if _shares_cache.get((db.name, o), (0.0,))[0] <= now]
    if missing:
        found: dict[str, list[dict]] = defaultdict(list)
        for share in folder_shares.of_owners(db, missing):
            found[share["owner"]].append(share)
        if len(_shares_cache) > CACHE_MAX:
            for key in [k for k, (until, _) in _shares_cache.items() if until <= now]:
                del _shares_cache[key]
        for owner in missing:
            _shares_cache[(db.name, owner)] = (now + SHARES_SECONDS, found.get(owner, []))
    return [share for o in owners for share in _shares_cache.get((db.name, o), (0.0, []))[1]]


def sharees_of(db, wanted: dict[str, set[str]]) -> dict[tuple[str, str], set[str]]:
    """`{(owner, node_id): {user ids}}`: who reaches each changed node through a share of its owner's."""
    grants: dict[str, dict[str, list[dict]]] = defaultdict(lambda: defaultdict(list))  # owner -> folder -> shares
    for share in shares_of(db, list(wanted)):
        grants[share["owner"]][share["folder_id"]].append(share)
    if not grants:
        return {}
    reached: dict[tuple[str, str], list[dict]] = defaultdict(list)
    frontier: dict[str, set[str]] = defaultdict(set)  # node id to look at -> the changed nodes below it
    for owner in grants:
        for node_id in wanted[owner]:
            frontier[node_id].add(node_id)
    for _ in range(MAX_DEPTH):
        if not frontier:
            break
        above: dict[str, set[str]] = defaultdict(set)
        for doc in db.nodes.find({"_id": {"$in": list(frontier)}, "owner": {"$in": list(grants)}},
                                 {"owner": 1, "parent_id": 1}):
            below = frontier[doc["_id"]]
            for share in grants[doc["owner"]].get(doc["_id"], ()):
                for node_id in below:
                    reached[(doc["owner"], node_id)].append(share)
            if doc.get("parent_id"):
                above[doc["parent_id"]] |= below
        frontier = above
    if not reached:
        return {}
    members = groups.members_of(db, {s["grantee_id"] for found in reached.values() for s in found
                                     if s["grantee_type"] == "group"})
    out: dict[tuple[str, str], set[str]] = {}
    for (owner, node_id), found in reached.items():
        people = set()
        for share in found:
            people.update(members.get(share["grantee_id"], ()) if share["grantee_type"] == "group"
                          else (share["grantee_id"],))
        people.discard(owner)
        if people:
            out[(owner, node_id)] = people
    return out
