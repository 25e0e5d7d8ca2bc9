"""A local stand-in for Google Drive v3 and its OAuth 2 server, speaking the real HTTP protocol so Authlib and
runtime/store/gdrive.py run unchanged against it (issue 19: the user's own cloud as a store).

OAuth: authorize (`/o/oauth2/v2/auth`: a consent form where the person types their Google email; "Cancel"
answers `access_denied`), token (`/token`: `authorization_code` with client authentication, redirect_uri and
PKCE checked, a refresh token only with `access_type=offline` as Google does; `refresh_token`), `/revoke`.
Access tokens live `access_seconds` (short, so clients must refresh).
Drive (only what PCloud uses, with Google's error shape): `GET /drive/v3/about`, `POST /drive/v3/files`
(metadata only: a folder), `POST /upload/drive/v3/files?uploadType=multipart|media`, `GET /drive/v3/files?q=`
(`name = '…'`, `mimeType = '…'`, `'<id>' in parents`, `trashed = false`, joined by `and`; pageSize/pageToken),
`GET /drive/v3/files/{id}` (`alt=media`: the bytes, Range honoured), `DELETE /drive/v3/files/{id}`.
Only the fields a request asks for (`fields=`) are answered, as Drive does. Files are kept on disk under `root`.

Tests: `FakeDrive(client_id, client_secret, root=tmp_path).start()`; `fake.grant(email)` mints a token set
without the browser dance; `fake.fail_next(503, count)` / `fake.fail_always(401)` / `fake.heal()` break the
Drive calls; `fake.expire_access_tokens()` and `fake.revoke_all(email)`; `fake.files(email)` and
`fake.raw(email, name)` read what the drive holds, `fake.overwrite(email, name, data)` corrupts it.
As a process: `python -m devtools.gdrive --port 8911 --root /tmp/drive`.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import hmac
import json
import re
import secrets
import tempfile
import threading
import time
from datetime import UTC, datetime
from html import escape
from pathlib import Path
from urllib.parse import urlencode, urlsplit

from flask import Flask, Response, jsonify, redirect, request

from devtools.serve import ServedApp

FOLDER_MIME = "application/vnd.google-apps.folder"
DRIVE_SCOPES = ("https://www.googleapis.com/auth/drive.file", "https://www.googleapis.com/auth/drive")
DEFAULT_FILE_FIELDS = ("kind", "id", "name", "mimeType")
_CLAUSE = re.compile(r"""^\s*(?:(name|mimeType)\s*(=|!=)\s*'((?:[^'\\]|\\.)*)'|'((?:[^'\\]|\\.)*)'\s+in\s+parents"""
                     r"""|trashed\s*=\s*(true|false))\s*$""")


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _rfc3339(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{int(epoch * 1000) % 1000:03d}Z"


def _add_query(uri: str, params: dict) -> str:
    sep = "&" if urlsplit(uri).query else "?"
    return f"{uri}{sep}{urlencode(params)}"


def _unquote(text: str) -> str:
    return re.sub(r"\\(.)", r"\1", text)


def _fields(spec: str | None) -> tuple[set[str] | None, set[str] | None]:
    """(top-level fields, fields of each item of `files(...)`); None = Drive's defaults."""
    if not spec:
        return None, None
    top, nested, depth, current = set(), None, 0, ""
    for ch in spec + ",":
        if ch == "(":
            depth += 1
            current += ch
        elif ch == ")":
            depth -= 1
            current += ch
        elif ch == "," and depth == 0:
            item = current.strip()
            current = ""
            if item.startswith("files(") and item.endswith(")"):
                top.add("files")
                nested = {f.strip() for f in item[6:-1].split(",") if f.strip()}
            elif item:
                top.add(item)
        else:
            current += ch
    return top, nested


class FakeDrive(ServedApp):
    def __init__(self, client_id: str | None = None, client_secret: str | None = None, root: Path | None = None,
                 access_seconds: int = 3599):
        self.client_id, self.client_secret = client_id, client_secret
        self.root = Path(root) if root else Path(tempfile.mkdtemp(prefix="fake-drive-"))
        self.access_seconds = access_seconds
        self.codes: dict[str, dict] = {}
        self.refresh_tokens: dict[str, dict] = {}  # refresh token -> {email, client_id, scope}
        self.access_tokens: dict[str, dict] = {}  # access token -> {email, client_id, scope, expires, refresh}
        self.meta: dict[str, dict] = {}  # file id -> resource (plus "_owner", "_app")
        self.token_requests: list[dict] = []
        self.api_calls: list[tuple[str, str]] = []
        self._fail: dict = {"status": None, "left": 0, "oauth": False}
        self.lock = threading.RLock()
        self.app = self._build_app()
        self._server = None
        self.url = ""

    # --- addresses --------------------------------------------------------------------------
    @property
    def authorize_url(self) -> str:
        return f"{self.url}/o/oauth2/v2/auth"

    @property
    def token_url(self) -> str:
        return f"{self.url}/token"

    @property
    def revoke_url(self) -> str:
        return f"{self.url}/revoke"

    @property
    def api_url(self) -> str:
        return f"{self.url}/drive/v3"

    @property
    def upload_url(self) -> str:
        return f"{self.url}/upload/drive/v3"

    # --- test controls ----------------------------------------------------------------------
    def grant(self, email: str, client_id: str | None = None, scope: str = DRIVE_SCOPES[0]) -> dict:
        """A token set as the token endpoint would hand out after consent (no browser)."""
        client_id = client_id or self.client_id or "client"
        refresh = "1//" + secrets.token_urlsafe(32)
        with self.lock:
            self.refresh_tokens[refresh] = {"email": email, "client_id": client_id, "scope": scope}
        return {**self._access(refresh), "refresh_token": refresh}

    def fail_next(self, status: int | None, count: int = 1, oauth: bool = False) -> None:
        """The next `count` Drive calls (-1: all; with `oauth`, token requests instead) answer `status`."""
        with self.lock:
            self._fail = {"status": status, "left": count, "oauth": oauth}

    def fail_always(self, status: int, oauth: bool = False) -> None:
        self.fail_next(status, count=-1, oauth=oauth)

    def _take_failure(self, oauth: bool) -> int | None:
        with self.lock:
            status = self._fail["status"]
            if status is None or bool(self._fail.get("oauth")) != oauth:
                return None
            if self._fail["left"] > 0:
                self._fail["left"] -= 1
                if self._fail["left"] == 0:
                    self._fail["status"] = None
            return status

    def heal(self) -> None:
        self.fail_next(None, 0)

    def expire_access_tokens(self) -> None:
        """Every access token handed out so far stops working (as after its hour): clients must refresh."""
        with self.lock:
            for grant in self.access_tokens.values():
                grant["expires"] = 0

    def revoke_all(self, email: str) -> None:
        """The person removed the app's access in their Google account: no token of theirs works any more."""
        with self.lock:
            for token in [t for t, g in self.refresh_tokens.items() if g["email"] == email]:
                if token in self.refresh_tokens:
                    self._revoke(token)

    def files(self, email: str) -> list[dict]:
        with self.lock:
            return [dict(m) for m in self.meta.values() if m["_owner"] == email]

    def _find(self, email: str, name: str) -> dict:
        found = [m for m in self.files(email) if m["name"] == name]
        if len(found) != 1:
            raise KeyError(f"{len(found)} files named {name!r} in the drive of {email}")
        return found[0]

    def raw(self, email: str, name: str) -> bytes:
        return self._path(self._find(email, name)["id"]).read_bytes()

    def overwrite(self, email: str, name: str, data: bytes) -> None:
        self._path(self._find(email, name)["id"]).write_bytes(data)

    # --- state ------------------------------------------------------------------------------
    def _path(self, file_id: str) -> Path:
        return self.root / file_id

    def _access(self, refresh: str | None, grant: dict | None = None) -> dict:
        grant = grant or self.refresh_tokens[refresh]
        access = "ya29." + secrets.token_urlsafe(32)
        with self.lock:
            self.access_tokens[access] = {**grant, "expires": time.time() + self.access_seconds, "refresh": refresh}
        return {"access_token": access, "expires_in": self.access_seconds, "token_type": "Bearer",
                "scope": grant["scope"]}

    def _revoke(self, token: str) -> bool:
        """As Google does: revoking any token of a grant removes the app's access to that account altogether."""
        with self.lock:
            grant = self.refresh_tokens.get(token) or self.access_tokens.get(token)
            if grant is None:
                return False
            same = (grant["email"], grant["client_id"])
            for refresh in [t for t, g in self.refresh_tokens.items() if (g["email"], g["client_id"]) == same]:
                del self.refresh_tokens[refresh]
            for access in [t for t, g in self.access_tokens.items() if (g["email"], g["client_id"]) == same]:
                del self.access_tokens[access]
            return True

    def _client_ok(self, client_id: str | None, secret: str | None = None, check_secret: bool = False) -> bool:
        if not client_id or (self.client_id is not None and client_id != self.client_id):
            return False
        return not (check_secret and self.client_secret is not None and secret != self.client_secret)

    def _root_id(self, email: str) -> str:
        return "root-" + hashlib.sha256(email.encode()).hexdigest()[:16]

    # --- the app ----------------------------------------------------------------------------
    def _build_app(self) -> Flask:
        app = Flask(__name__)
        fake = self

        def oauth_error(error: str, description: str, status: int = 400):
            resp = jsonify({"error": error, "error_description": description})
            resp.status_code = status
            return resp

        def drive_error(status: int, reason: str, message: str, **extra):
            state = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED", 404: "NOT_FOUND",
                     429: "RESOURCE_EXHAUSTED", 500: "INTERNAL", 503: "UNAVAILABLE"}.get(status, "UNKNOWN")
            resp = jsonify({"error": {"code": status, "message": message, "status": state,
                                      "errors": [{"domain": "global", "reason": reason, "message": message,
                                                  **extra}]}})
            resp.status_code = status
            if status == 401:
                resp.headers["WWW-Authenticate"] = 'Bearer realm="https://accounts.google.com/"'
            return resp

        def caller() -> tuple[dict | None, Response | None]:
            """The grant behind the bearer token, or Google's error answer (also an injected failure)."""
            fake.api_calls.append((request.method, request.path))
            status = fake._take_failure(oauth=False)
            if status is not None:
                if status == 401:
                    return None, drive_error(401, "authError", "Request had invalid authentication credentials.")
                return None, drive_error(status, "backendError" if status >= 500 else "rateLimitExceeded",
                                         "injected failure")
            header = request.headers.get("Authorization", "")
            with fake.lock:
                grant = fake.access_tokens.get(header.removeprefix("Bearer ").strip()) \
                    if header.startswith("Bearer ") else None
            if grant is None or grant["expires"] < time.time():
                return None, drive_error(401, "authError", "Request had invalid authentication credentials. "
                                         "Expected OAuth 2 access token.", location="Authorization",
                                         locationType="header")
            if not set(grant["scope"].split()) & set(DRIVE_SCOPES):
                return None, drive_error(403, "insufficientPermissions",
                                         "Request had insufficient authentication scopes.")
            return grant, None

        def visible(grant: dict, file_id: str) -> dict | None:
            meta = fake.meta.get(file_id)
            if meta is None or meta["_owner"] != grant["email"]:
                return None
            if DRIVE_SCOPES[1] not in grant["scope"].split() and meta["_app"] != grant["client_id"]:
                return None  # drive.file: only what this app made
            return meta

        def shape(meta: dict, wanted: set[str] | None) -> dict:
            public = {k: v for k, v in meta.items() if not k.startswith("_")}
            keys = wanted if wanted is not None else DEFAULT_FILE_FIELDS
            return {k: public[k] for k in keys if k in public}

        def create(grant: dict, metadata: dict, data: bytes | None):
            name = metadata.get("name") or "Untitled"
            mime = metadata.get("mimeType") or "application/octet-stream"
            parents = metadata.get("parents") or [fake._root_id(grant["email"])]
            if not isinstance(parents, list) or len(parents) != 1:
                return None, drive_error(400, "invalid", "A file must have exactly one parent.")
            parent = parents[0]
            if parent == "root":
                parent = fake._root_id(grant["email"])
            if parent != fake._root_id(grant["email"]):
                folder = visible(grant, parent)
                if folder is None or folder["mimeType"] != FOLDER_MIME or folder["trashed"]:
                    return None, drive_error(404, "notFound", f"File not found: {parent}.", location="fileId",
                                             locationType="parameter")
            file_id = secrets.token_urlsafe(24).replace("-", "A").replace("_", "B")
            now = time.time()
            meta = {"kind": "drive#file", "id": file_id, "name": name, "mimeType": mime, "parents": [parent],
                    "trashed": False, "createdTime": _rfc3339(now), "modifiedTime": _rfc3339(now),
                    "_owner": grant["email"], "_app": grant["client_id"]}
            if mime != FOLDER_MIME:
                body = data or b""
                fake._path(file_id).parent.mkdir(parents=True, exist_ok=True)
                fake._path(file_id).write_bytes(body)
                meta.update(size=str(len(body)), md5Checksum=hashlib.md5(body, usedforsecurity=False).hexdigest())
            with fake.lock:
                fake.meta[file_id] = meta
            return meta, None

        # --- OAuth ------------------------------------------------------------------------------
        @app.get("/o/oauth2/v2/auth")
        def authorize_form():
            args = request.args
            if not fake._client_ok(args.get("client_id")):
                return "Error 401: invalid_client — The OAuth client was not found.", 401
            if args.get("response_type") != "code" or not args.get("redirect_uri"):
                return "Error 400: invalid_request — response_type=code and redirect_uri are required.", 400
            if not set((args.get("scope") or "").split()) & set(DRIVE_SCOPES):
                return "Error 400: invalid_scope — this stand-in grants Google Drive scopes.", 400
            hidden = "".join(f'<input type="hidden" name="{escape(k)}" value="{escape(v)}">' for k, v in args.items())
            return f"""<!doctype html><html><head><meta charset="utf-8"><title>Drive access (stand-in)</title></head>
<body><h1>Allow access to your Google Drive?</h1>
<p>Local stand-in: type the Google account whose drive to connect; the app may see only the files it creates.</p>
<form method="post" action="/o/oauth2/v2/auth">{hidden}
<label>Email <input type="email" name="email" required value="{escape(args.get('login_hint', ''))}"></label>
<button type="submit" name="action" value="approve" id="approve">Allow</button>
<button type="submit" name="action" value="deny" id="deny" formnovalidate>Cancel</button>
</form></body></html>"""

        @app.post("/o/oauth2/v2/auth")
        def authorize_submit():
            form = request.form
            redirect_uri, state = form.get("redirect_uri"), form.get("state")
            if not fake._client_ok(form.get("client_id")) or not redirect_uri:
                return "Error 400: invalid_request", 400
            params = {"state": state} if state else {}
            if form.get("action") == "deny":
                return redirect(_add_query(redirect_uri, {"error": "access_denied", **params}), 302)
            email = (form.get("email") or "").strip().lower()
            if "@" not in email:
                return "Error 400: type an email address", 400
            code = "4/" + secrets.token_urlsafe(24)
            with fake.lock:
                fake.codes[code] = {
                    "client_id": form["client_id"], "redirect_uri": redirect_uri, "email": email,
                    "scope": " ".join(s for s in form.get("scope", "").split() if s in DRIVE_SCOPES),
                    "challenge": form.get("code_challenge"), "method": form.get("code_challenge_method") or "plain",
                    "offline": form.get("access_type") == "offline", "expires": time.time() + 600}
            return redirect(_add_query(redirect_uri, {"code": code, **params, "scope": fake.codes[code]["scope"]}),
                            302)

        @app.post("/token")
        def token():
            form = request.form
            client_id, secret = form.get("client_id"), form.get("client_secret")
            if request.authorization and request.authorization.type == "basic":
                client_id, secret = request.authorization.username, request.authorization.password
            fake.token_requests.append({k: v for k, v in form.items() if k not in ("client_secret",)})
            status = fake._take_failure(oauth=True)
            if status is not None:
                return oauth_error("server_error", "injected failure", status)
            if not fake._client_ok(client_id, secret, check_secret=True):
                return oauth_error("invalid_client", "The OAuth client was not found.", 401)
            grant_type = form.get("grant_type")
            if grant_type == "refresh_token":
                with fake.lock:
                    grant = fake.refresh_tokens.get(form.get("refresh_token", ""))
                if grant is None or grant["client_id"] != client_id:
                    return oauth_error("invalid_grant", "Token has been expired or revoked.")
                return jsonify(fake._access(form["refresh_token"]))
            if grant_type != "authorization_code":
                return oauth_error("unsupported_grant_type", "Invalid grant_type: " + str(grant_type))
            with fake.lock:
                grant = fake.codes.pop(form.get("code", ""), None)
            if grant is None or grant["expires"] < time.time() or grant["client_id"] != client_id:
                return oauth_error("invalid_grant", "Malformed auth code.")
            if form.get("redirect_uri") != grant["redirect_uri"]:
                return oauth_error("redirect_uri_mismatch", "Bad Request")
            if grant["challenge"]:
                verifier = form.get("code_verifier") or ""
                expected = verifier if grant["method"] == "plain" else _b64(hashlib.sha256(verifier.encode()).digest())
                if not hmac.compare_digest(expected, grant["challenge"]):
                    return oauth_error("invalid_grant", "Invalid code verifier.")
            base = {"email": grant["email"], "client_id": client_id, "scope": grant["scope"]}
            if not grant["offline"]:
                return jsonify(fake._access(None, base))
            refresh = "1//" + secrets.token_urlsafe(32)
            with fake.lock:
                fake.refresh_tokens[refresh] = base
            return jsonify({**fake._access(refresh), "refresh_token": refresh})

        @app.post("/revoke")
        def revoke():
            token_ = request.form.get("token") or request.args.get("token") or ""
            if not fake._revoke(token_):
                return oauth_error("invalid_token", "Token expired or revoked")
            return "", 200

        # --- Drive ------------------------------------------------------------------------------
        @app.get("/drive/v3/about")
        def about():
            grant, error = caller()
            if error:
                return error
            return jsonify({"user": {"kind": "drive#user", "emailAddress": grant["email"],
                                     "displayName": grant["email"].split("@")[0].title()}})

        @app.post("/drive/v3/files")
        def create_metadata():
            grant, error = caller()
            if error:
                return error
            metadata = request.get_json(silent=True)
            if not isinstance(metadata, dict):
                return drive_error(400, "parseError", "Parse Error")
            meta, error = create(grant, metadata, None)
            return error or jsonify(shape(meta, _fields(request.args.get("fields"))[0]))

        @app.post("/upload/drive/v3/files")
        def upload():
            grant, error = caller()
            if error:
                return error
            kind = request.args.get("uploadType")
            body = request.get_data()
            if kind == "media":
                metadata, data = {}, body
            elif kind == "multipart":
                match = re.search(r'boundary="?([^";]+)"?', request.headers.get("Content-Type", ""))
                if not request.mimetype == "multipart/related" or not match:
                    return drive_error(400, "badContent", "Multipart upload needs multipart/related with a boundary")
                parts = _multipart(body, match.group(1).encode())
                if parts is None or len(parts) != 2:
                    return drive_error(400, "badContent", "Malformed multipart body.")
                try:
                    metadata = json.loads(parts[0][1])
                except ValueError:
                    return drive_error(400, "parseError", "Parse Error")
                data = parts[1][1]
            else:
                return drive_error(400, "invalid", f"Invalid value for uploadType: {kind}")
            meta, error = create(grant, metadata, data)
            return error or jsonify(shape(meta, _fields(request.args.get("fields"))[0]))

        @app.get("/drive/v3/files")
        def list_files():
            grant, error = caller()
            if error:
                return error
            conditions = []
            for clause in filter(None, re.split(r"\s+and\s+", request.args.get("q", "").strip())):
                m = _CLAUSE.match(clause)
                if not m:
                    return drive_error(400, "invalid", "Invalid Value", location="q", locationType="parameter")
                conditions.append(m.groups())
            try:
                size = int(request.args.get("pageSize") or 100)
                start = int(request.args.get("pageToken") or 0)
            except ValueError:
                return drive_error(400, "invalid", "Invalid Value")
            if not 1 <= size <= 1000:
                return drive_error(400, "invalid", "Invalid Value", location="pageSize")
            root = fake._root_id(grant["email"])

            def matches(meta: dict) -> bool:
                for field, op, value, parent, trashed in conditions:
                    if field:
                        equal = meta[field] == _unquote(value)
                        if equal != (op == "="):
                            return False
                    elif parent is not None:
                        wanted = root if _unquote(parent) == "root" else _unquote(parent)
                        if wanted not in meta["parents"]:
                            return False
                    elif meta["trashed"] != (trashed == "true"):
                        return False
                return True

            with fake.lock:
                found = [m for m in fake.meta.values() if visible(grant, m["id"]) and matches(m)]
            found.sort(key=lambda m: (m["createdTime"], m["id"]))
            top, nested = _fields(request.args.get("fields"))
            page = found[start:start + size]
            answer = {"kind": "drive#fileList", "incompleteSearch": False,
                      "files": [shape(m, nested) for m in page]}
            if start + size < len(found):
                answer["nextPageToken"] = str(start + size)
            if top is not None:
                answer = {k: v for k, v in answer.items() if k in top}
            return jsonify(answer)

        @app.get("/drive/v3/files/<file_id>")
        def get_file(file_id):
            grant, error = caller()
            if error:
                return error
            meta = visible(grant, file_id)
            if meta is None:
                return drive_error(404, "notFound", f"File not found: {file_id}.", location="fileId",
                                   locationType="parameter")
            if request.args.get("alt") != "media":
                return jsonify(shape(meta, _fields(request.args.get("fields"))[0]))
            if meta["mimeType"] == FOLDER_MIME:
                return drive_error(403, "fileNotDownloadable", "Only files with binary content can be downloaded.")
            data = fake._path(file_id).read_bytes()
            ranged = request.range
            if ranged is not None and len(ranged.ranges) == 1:
                span = ranged.range_for_length(len(data))
                if span is None:
                    resp = Response(status=416)
                    resp.headers["Content-Range"] = f"bytes */{len(data)}"
                    return resp
                resp = Response(data[span[0]:span[1]], status=206, mimetype=meta["mimeType"])
                resp.headers["Content-Range"] = f"bytes {span[0]}-{span[1] - 1}/{len(data)}"
                return resp
            return Response(data, mimetype=meta["mimeType"])

        @app.delete("/drive/v3/files/<file_id>")
        def delete_file(file_id):
            grant, error = caller()
            if error:
                return error
            meta = visible(grant, file_id)
            if meta is None:
                return drive_error(404, "notFound", f"File not found: {file_id}.", location="fileId",
                                   locationType="parameter")
            with fake.lock:
                doomed = [file_id] + [m["id"] for m in fake.meta.values() if file_id in m["parents"]]
                for gone in doomed:
                    fake.meta.pop(gone, None)
                    fake._path(gone).unlink(missing_ok=True)
            return "", 204

        return app


def _multipart(body: bytes, boundary: bytes) -> list[tuple[dict, bytes]] | None:
    """The parts of a multipart/related body, bytes exact (RFC 2046: CRLF before each delimiter is its own)."""
    delimiter = b"--" + boundary
    if not body.startswith(delimiter):
        return None
    sections = body.split(b"\r\n" + delimiter)
    first = sections[0][len(delimiter):]
    sections = [first] + sections[1:]
    if not sections[-1].startswith(b"--"):
        return None
    parts = []
    for section in sections[:-1]:
        if not section.startswith(b"\r\n") or b"\r\n\r\n" not in section:
            return None
        head, _, content = section[2:].partition(b"\r\n\r\n")
        headers = {}
        for line in head.split(b"\r\n"):
            key, _, value = line.decode("latin-1").partition(":")
            headers[key.strip().lower()] = value.strip()
        parts.append((headers, content))
    return parts


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description="local Google Drive v3 + OAuth stand-in (demo, tests)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8911)
    parser.add_argument("--root", default=None, help="where the files live (default: a new temp dir)")
    parser.add_argument("--client-id", default=None, help="accept only this client id (default: any)")
    parser.add_argument("--client-secret", default=None, help="accept only this client secret (default: any)")
    parser.add_argument("--access-seconds", type=int, default=3599, help="access token lifetime")
    args = parser.parse_args(argv)
    fake = FakeDrive(args.client_id, args.client_secret, root=args.root, access_seconds=args.access_seconds)
    fake.serve_forever(args.host, args.port, lambda f: f"Google Drive stand-in on {f.url} (files in {f.root})")


if __name__ == "__main__":
    main()
