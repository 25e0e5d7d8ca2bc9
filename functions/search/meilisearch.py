"""MeilisearchSearchIndex: the cluster backend, a Meilisearch server by URL (HTTP API v1, through requests).

One index (`PCLOUD_SEARCH_INDEX`, default `pcloud`) holds every owner's documents; each query filters on the
owner. Typo tolerance is off so that words match as §9 says (exact words, `word*` prefixes). Limitations of this
backend, from Meilisearch itself: only a query's last word is a prefix (so prefix terms are put last, and a
second `word*` matches as a whole word), and that last word is a prefix even without `*`. Writes are asynchronous
tasks; `flush` waits for them. Not run here: no Meilisearch server installs from PyPI, Debian or npm (see
tests/contract/test_search_index.py for how to run its contract against one).
"""

from __future__ import annotations

import hashlib
import json
import time

import requests

from functions.search.index import Hit, SearchDoc, SearchUnavailable
from functions.search.query import Query, normalize


def _key(owner: str, doc_id: str) -> str:
    return hashlib.sha256(f"{owner}\0{doc_id}".encode()).hexdigest()


def _quote(value: str) -> str:
    return json.dumps(value)


class MeilisearchSearchIndex:
    name = "meilisearch"

    def __init__(self, url: str, *, api_key: str | None = None, index: str = "pcloud", timeout: float = 10.0):
        self.base = url.rstrip("/")
        self.index = index
        self.timeout = timeout
        self._http = requests.Session()
        if api_key:
            self._http.headers["Authorization"] = f"Bearer {api_key}"
        self._tasks: list[int] = []
        self._configured = False

    def _call(self, method: str, path: str, body=None) -> dict:
        try:
            resp = self._http.request(method, f"{self.base}{path}", json=body, timeout=self.timeout)
        except requests.RequestException as exc:
            raise SearchUnavailable(f"meilisearch at {self.base}: {exc}") from exc
        if resp.status_code == 404 and method == "GET":
            return {}
        if resp.status_code >= 400:
            raise SearchUnavailable(f"meilisearch {method} {path}: {resp.status_code} {resp.text[:200]}")
        return resp.json() if resp.content else {}

    def _configure(self) -> None:
        if self._configured:
            return
        self._wait(self._call("POST", "/indexes", {"uid": self.index, "primaryKey": "key"}).get("taskUid"),
                   allow_failure=True)
        self._wait(self._call("PATCH", f"/indexes/{self.index}/settings", {
            "searchableAttributes": ["text"],
            "filterableAttributes": ["owner", "type", "deleted", "exact", "id"],
            "typoTolerance": {"enabled": False},
        }).get("taskUid"))
        self._configured = True

    def _wait(self, task_uid, allow_failure: bool = False, timeout: float = 30.0) -> None:
        if task_uid is None:
            return
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            task = self._call("GET", f"/tasks/{task_uid}")
            if task.get("status") == "succeeded":
                return
            if task.get("status") in ("failed", "canceled"):
                if allow_failure:
                    return
                raise SearchUnavailable(f"meilisearch task {task_uid} {task.get('status')}: {task.get('error')}")
            time.sleep(0.02)
        raise SearchUnavailable(f"meilisearch task {task_uid} did not finish in {timeout} s")

    def _held(self, owner: str, ids: list[str]) -> dict[str, int]:
        held: dict[str, int] = {}
        for start in range(0, len(ids), 500):
            chunk = ids[start:start + 500]
            found = self._call("POST", f"/indexes/{self.index}/documents/fetch", {
                "filter": f"owner = {_quote(owner)} AND id IN [{', '.join(_quote(i) for i in chunk)}]",
                "fields": ["id", "seq"], "limit": len(chunk)})
            held.update({d["id"]: d["seq"] for d in found.get("results", [])})
        return held

    def _write(self, changes: list[tuple[SearchDoc, bool]]) -> None:
        self._configure()
        latest: dict[tuple[str, str], tuple[SearchDoc, bool]] = {}
        for doc, deleted in changes:
            key = (doc.owner, doc.id)
            if key not in latest or latest[key][0].seq < doc.seq:
                latest[key] = (doc, deleted)
        bodies = []
        for owner in {o for o, _ in latest}:
            mine = {i: v for (o, i), v in latest.items() if o == owner}
            held = self._held(owner, list(mine))
            for doc_id, (doc, deleted) in mine.items():
                if held.get(doc_id, 0) >= doc.seq:
                    continue
                bodies.append({"key": _key(owner, doc_id), "owner": owner, "id": doc_id, "type": doc.type,
                               "seq": doc.seq, "deleted": deleted, "fields": {} if deleted else doc.fields,
                               "node": None if deleted else doc.node,
                               "text": "" if deleted else " . ".join(normalize(str(v)) for v in doc.fields.values()
                                                                     if v),
                               "exact": [] if deleted else [f"{k}={normalize(str(v))}" for k, v in doc.fields.items()
                                                            if v]})
        if bodies:
            task = self._call("POST", f"/indexes/{self.index}/documents", bodies)
            self._tasks.append(task.get("taskUid"))

    def upsert(self, docs: list[SearchDoc]) -> None:
        self._write([(d, False) for d in docs])
        self.flush()  # the seq guard reads what the previous batch wrote

    def delete(self, owner: str, items: list[tuple[str, int]]) -> None:
        self._write([(SearchDoc(owner, doc_id, "", seq), True) for doc_id, seq in items])
        self.flush()

    def search(self, owner: str, query: Query, types: list[str] | None, limit: int, offset: int) -> list[Hit]:
        self._configure()
        filters = [f"owner = {_quote(owner)}", "deleted = false"]
        if types:
            filters.append(f"type IN [{', '.join(_quote(t) for t in types)}]")
        filters.extend(f"exact = {_quote(f'{k}={v}')}" for k, v in query.exact)
        whole = [t for t in query.terms if not t.prefix]
        prefixes = [t for t in query.terms if t.prefix]
        q = " ".join(f'"{t.text}"' if t.phrase else t.text for t in whole + prefixes)
        found = self._call("POST", f"/indexes/{self.index}/search", {
            "q": q, "filter": " AND ".join(filters), "limit": limit, "offset": offset,
            "matchingStrategy": "all", "showRankingScore": True,
            "attributesToRetrieve": ["id", "type", "fields", "node"]})
        return [Hit(h["id"], h["type"], round(h.get("_rankingScore", 0.0), 6), h.get("fields") or {}, h.get("node"))
                for h in found.get("hits", [])]

    def clear(self) -> None:
        self._configure()
        self._tasks.append(self._call("DELETE", f"/indexes/{self.index}/documents").get("taskUid"))
        self.flush()

    def flush(self) -> None:
        while self._tasks:
            self._wait(self._tasks.pop(0))

    def close(self) -> None:
        self._http.close()
