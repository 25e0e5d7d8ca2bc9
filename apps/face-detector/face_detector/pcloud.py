"""The little of PCloud's public HTTP API this app uses (CONTRACT §7, §8), with the invocation token it was called
with. No PCloud code is imported: an app is an ordinary program that talks HTTP.

Errors are sorted the way the app must answer PCloud: `Gone` (the thing is not there any more — the execution is
done, nothing to do), `Refused` (our own request was wrong or not granted — retrying will not help) and
`Unavailable` (PCloud could not answer — let PCloud retry).
"""

from __future__ import annotations

from urllib.parse import quote

import requests

TIMEOUT = 30.0
PAGE = 500
BATCH = 50  # mutations per request (the graph allows 100 aliases)
MAX_FILE_BYTES = 128 * 1024 * 1024


class PCloudError(Exception):
    def __init__(self, message: str, code: str = "error", status: int = 0):
        super().__init__(message)
        self.code, self.status = code, status


class Gone(PCloudError):
    """404 / NOT_FOUND: deleted meanwhile or not this user's."""


class Refused(PCloudError):
    """A 4xx or a GraphQL error other than not-found: our request will not get better by retrying."""


class Unavailable(PCloudError):
    """5xx, a timeout or no connection."""


class TooBig(PCloudError):
    """A file larger than this app reads."""


class PCloud:
    def __init__(self, api_url: str, token: str, timeout: float = TIMEOUT, http: requests.Session | None = None):
        self.base = api_url.rstrip("/")
        self.timeout = timeout
        self.http = http or requests.Session()
        self.headers = {"Authorization": f"Bearer {token}"}

    def _post(self, path: str, body: dict) -> requests.Response:
        try:
            response = self.http.post(f"{self.base}{path}", json=body, headers=self.headers, timeout=self.timeout)
        except requests.RequestException as exc:
            raise Unavailable(f"PCloud did not answer {path}: {exc}") from exc
        _raise_for(response, path)
        return response

    # -- core actions (§8)

    def action(self, app: str, action: str, params: dict) -> dict:
        """Call an action and wait for its result (PCloud answers 200 with the finished execution)."""
        response = self._post(f"/apps/v1/actions/{app}/{action}", params)
        if response.status_code == 202:
            raise Unavailable(f"{app}.{action} did not finish in time", code="timeout", status=202)
        execution = response.json().get("execution") or {}
        if execution.get("state") not in (None, "done"):
            raise Refused(f"{app}.{action} ended {execution.get('state')}: {execution.get('error')}")
        return execution.get("result") or {}

    def read_file(self, file_id: str, max_bytes: int = MAX_FILE_BYTES) -> bytes:
        """The file's bytes. `files.read` granted puts that scope in the invocation token, so the bytes come
        straight from /files/v1 (§3), read no further than max_bytes."""
        path = f"/files/v1/nodes/{quote(file_id, safe='')}/content"
        try:
            response = self.http.get(f"{self.base}{path}", headers=self.headers, timeout=self.timeout, stream=True)
        except requests.RequestException as exc:
            raise Unavailable(f"PCloud did not answer {path}: {exc}") from exc
        with response:
            _raise_for(response, path)
            chunks, size = [], 0
            try:
                for chunk in response.iter_content(1 << 16):
                    size += len(chunk)
                    if size > max_bytes:
                        raise TooBig(f"the file is larger than the {max_bytes} bytes read here", code="too_large")
                    chunks.append(chunk)
            except requests.RequestException as exc:
                raise Unavailable(f"reading {path} failed: {exc}") from exc
        return b"".join(chunks)

    def ensure_folder(self, path: str) -> dict:
        return self.action("files", "ensure-folder", {"path": path})

    # -- the generic graph API (§7), which every PCloud has whatever schemas are installed

    def graphql(self, query: str, variables: dict | None = None) -> dict:
        response = self._post("/graph/v1/graphql", {"query": query, "variables": variables or {}})
        body = response.json()
        errors = body.get("errors") or []
        if errors:
            first = errors[0]
            code = (first.get("extensions") or {}).get("code", "error")
            kind = Gone if code == "NOT_FOUND" else Unavailable if code == "INTERNAL" else Refused
            raise kind(first.get("message", "GraphQL error"), code=code)
        return body.get("data") or {}

    def node(self, node_id: str) -> dict | None:
        data = self.graphql("query($id: ID!) { node(id: $id) { id type rev createdAt data } }", {"id": node_id})
        return data.get("node")

    def nodes(self, type_: str, where: dict | None = None) -> list[dict]:
        """Every node of a type matching `where` (all pages)."""
        items, after = [], None
        while True:
            data = self.graphql(
                "query($type: String!, $where: JSON, $first: Int, $after: String) {"
                " nodes(type: $type, where: $where, first: $first, after: $after) {"
                " items { id type rev createdAt data } nextCursor } }",
                {"type": type_, "where": where or {}, "first": PAGE, "after": after})
            page = data["nodes"]
            items.extend(page["items"])
            after = page.get("nextCursor")
            if not after:
                return items

    def create(self, type_: str, data: dict) -> dict:
        return self.graphql("mutation($type: String!, $data: JSON!) { createNode(type: $type, data: $data)"
                            " { id type rev createdAt data } }", {"type": type_, "data": data})["createNode"]

    def update(self, node_id: str, data: dict, rev: int | None = None) -> dict:
        query = ("mutation($id: ID!, $data: JSON!, $rev: Int) { updateNode(id: $id, data: $data, rev: $rev)"
                 " { id type rev createdAt data } }")
        return self.graphql(query, {"id": node_id, "data": data, "rev": rev})["updateNode"]

    def batch(self, creates: list[tuple[str, dict]] = (), updates: list[tuple[str, dict]] = ()) -> list[dict]:
        """Several createNode/updateNode in one request (aliases), answers in order: creates, then updates."""
        out: list[dict] = []
        calls = [("createNode", {"type": t, "data": d}) for t, d in creates]
        calls += [("updateNode", {"id": i, "data": d}) for i, d in updates]
        for start in range(0, len(calls), BATCH):
            chunk = calls[start:start + BATCH]
            params, fields, variables = [], [], {}
            for n, (op, args) in enumerate(chunk):
                if op == "createNode":
                    params += [f"$t{n}: String!", f"$d{n}: JSON!"]
                    fields.append(f"m{n}: createNode(type: $t{n}, data: $d{n}) {{ id type rev createdAt data }}")
                    variables.update({f"t{n}": args["type"], f"d{n}": args["data"]})
                else:
                    params += [f"$i{n}: ID!", f"$d{n}: JSON!"]
                    fields.append(f"m{n}: updateNode(id: $i{n}, data: $d{n}) {{ id type rev createdAt data }}")
                    variables.update({f"i{n}": args["id"], f"d{n}": args["data"]})
            data = self.graphql(f"mutation({', '.join(params)}) {{ {' '.join(fields)} }}", variables)
            out.extend(data[f"m{n}"] for n in range(len(chunk)))
        return out

    def delete(self, node_id: str) -> bool:
        try:
            return bool(self.graphql("mutation($id: ID!) { deleteNode(id: $id) }", {"id": node_id})["deleteNode"])
        except Gone:
            return False


def _raise_for(response: requests.Response, path: str) -> None:
    if response.status_code >= 500 or response.status_code in (408, 429):
        raise Unavailable(f"PCloud answered {response.status_code} to {path}", status=response.status_code)
    if response.status_code >= 400:
        error = _error_of(response)
        kind = Gone if response.status_code in (404, 410) else Refused
        raise kind(error.get("message") or f"{path}: {response.status_code}", code=error.get("code", "error"),
                   status=response.status_code)


def _error_of(response: requests.Response) -> dict:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body.get("error") or {} if isinstance(body, dict) else {}
