"""The HTTP side of the sync client: the mobile and files APIs with timeouts, errors as exceptions."""

from __future__ import annotations

import requests

TIMEOUT = (5, 60)


class ApiFailure(Exception):
    """The server answered with an error (status, code) or could not be reached (status 0)."""

    def __init__(self, status: int, code: str, message: str = ""):
        super().__init__(f"{status} {code}: {message}")
        self.status, self.code = status, code


class SyncApi:
    def __init__(self, base_url: str, token: str, session: requests.Session | None = None):
        self.base = base_url.rstrip("/")
        self.http = session or requests.Session()
        self.http.headers["Authorization"] = f"Bearer {token}"

    def _call(self, method: str, path: str, **kwargs):
        try:
            resp = self.http.request(method, self.base + path, timeout=TIMEOUT, **kwargs)
        except requests.RequestException as exc:
            raise ApiFailure(0, "unreachable", str(exc)) from exc
        if resp.status_code >= 400:
            try:
                err = resp.json()["error"]
                raise ApiFailure(resp.status_code, err.get("code", "error"), err.get("message", ""))
            except (ValueError, KeyError, TypeError):
                raise ApiFailure(resp.status_code, "http_error", resp.text[:200]) from None
        return resp

    def register_device(self, name: str, platform: str = "android") -> str:
        return self._call("POST", "/mobile/v1/devices", json={"name": name, "platform": platform}).json()["device_id"]

    def root(self) -> dict:
        return self._call("GET", "/files/v1/root").json()

    def changes(self, cursor: str | None, limit: int = 1000) -> dict:
        params = {"limit": limit}
        if cursor:
            params["cursor"] = cursor
        return self._call("GET", "/mobile/v1/changes", params=params).json()

    def ops(self, device_id: str, ops: list[dict]) -> dict:
        return self._call("POST", "/mobile/v1/ops", json={"device_id": device_id, "ops": ops}).json()

    def children(self, node_id: str) -> list[dict]:
        """Every live child of a folder (all pages)."""
        items, cursor = [], None
        while True:
            params = {"limit": 1000, **({"cursor": cursor} if cursor else {})}
            page = self._call("GET", f"/files/v1/nodes/{node_id}/children", params=params).json()
            items.extend(page["items"])
            cursor = page.get("next_cursor")
            if not cursor:
                return items

    def create_folder(self, parent_id: str, name: str) -> dict:
        return self._call("POST", "/files/v1/folders", json={"parent_id": parent_id, "name": name}).json()

    def commit(self, upload_id: str) -> dict:
        return self._call("POST", f"/files/v1/uploads/{upload_id}/commit").json()

    def negotiate(self, body: dict) -> dict:
        return self._call("POST", "/files/v1/uploads", json=body).json()

    def negotiate_batch(self, bodies: list[dict]) -> list[dict]:
        """Many negotiations (commit=if_complete each may carry) in one request; a result per body, in order."""
        return self._call("POST", "/files/v1/uploads/batch", json={"uploads": bodies}).json()["results"]

    def commit_batch(self, upload_ids: list[str]) -> list[dict]:
        return self._call("POST", "/files/v1/uploads/commit", json={"upload_ids": upload_ids}).json()["results"]

    def upload_urls(self, upload_id: str, after: str) -> dict:
        return self._call("GET", f"/files/v1/uploads/{upload_id}/urls", params={"after": after}).json()

    def put_block(self, target: dict, data: bytes) -> None:
        """Send one block where negotiation said (the store or a presigned URL), exactly as told."""
        try:
            resp = requests.request(target.get("method", "PUT"), target["url"], data=data,
                                    headers=target.get("headers") or {}, timeout=TIMEOUT)
        except requests.RequestException as exc:
            raise ApiFailure(0, "unreachable", str(exc)) from exc
        if resp.status_code >= 300:
            raise ApiFailure(resp.status_code, "block_upload_failed", resp.text[:200])

    def download(self, node_id: str, dest) -> None:
        """Stream a file's bytes into `dest` (an open binary file); follows a 302 to a presigned URL."""
        resp = self._call("GET", f"/files/v1/nodes/{node_id}/content", stream=True)
        with resp:
            for chunk in resp.iter_content(64 * 1024):
                dest.write(chunk)
