"""PCloud's HTTP API as an app sees it, always with the invocation token and a timeout."""

from __future__ import annotations

import requests


class PCloudError(Exception):
    """PCloud answered an error (`{"error": {code, message}}`), or a GraphQL call came back with errors."""

    def __init__(self, status: int, code: str, message: str, details=None):
        super().__init__(f"{status} {code}: {message}")
        self.status, self.code, self.message, self.details = status, code, message, details or {}


class PCloud:
    def __init__(self, api_url: str, token: str, timeout: float = 30.0, session: requests.Session | None = None):
        self.api_url = api_url.rstrip("/")
        self.token = token
        self.timeout = timeout
        self.http = session or requests.Session()

    def _request(self, method: str, path: str, **kwargs) -> requests.Response:
        headers = {"Authorization": f"Bearer {self.token}", **kwargs.pop("headers", {})}
        resp = self.http.request(method, self.api_url + path, headers=headers, timeout=self.timeout, **kwargs)
        if resp.status_code >= 400:
            try:
                err = resp.json()["error"]
                raise PCloudError(resp.status_code, err.get("code", "error"), err.get("message", ""),
                                  err.get("details"))
            except (ValueError, KeyError, TypeError):
                raise PCloudError(resp.status_code, "http_error", resp.text[:200]) from None
        return resp

    def graphql(self, query: str, variables: dict | None = None, raise_errors: bool = True) -> dict:
        """`{"data", "errors"?}`; with raise_errors the first error becomes PCloudError (code = extensions.code)."""
        body = self._request("POST", "/graph/v1/graphql", json={"query": query, "variables": variables or {}}).json()
        if raise_errors and body.get("errors"):
            first = body["errors"][0]
            raise PCloudError(200, (first.get("extensions") or {}).get("code", "GRAPHQL"), first.get("message", ""),
                              first.get("extensions"))
        return body

    def call(self, app: str, action: str, params: dict | None = None, idempotency_key: str | None = None) -> dict:
        """Another app's action (or a core one: files.read is `read_file`): the execution it made."""
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
        return self._request("POST", f"/apps/v1/actions/{app}/{action}", json=params or {},
                             headers=headers).json()["execution"]

    def ensure_folder(self, path: str) -> dict:
        return self.call("files", "ensure-folder", {"path": path})["result"]

    def read_file(self, file_id: str) -> bytes:
        return self._request("POST", "/apps/v1/actions/files/read", json={"file_id": file_id}).content
