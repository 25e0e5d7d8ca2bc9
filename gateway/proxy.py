"""Proxy to a function running in its own deployment, streaming bodies both ways."""

from __future__ import annotations

import logging

import requests

from runtime.errors import Unavailable
from runtime.identity import HEADER, encode_identity

log = logging.getLogger(__name__)
HOP_BY_HOP = {"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailers",
              "transfer-encoding", "upgrade", "host", "content-length"}


class ProxyApp:
    """A WSGI app that forwards to `base_url`; the identity travels HMAC-signed, never the raw token."""

    def __init__(self, base_url: str, identity_secret: bytes, timeout: float = 30.0):
        self.base_url = base_url.rstrip("/")
        self.secret = identity_secret
        self.timeout = timeout
        self.session = requests.Session()

    def __call__(self, environ, start_response):
        from runtime.identity import ENVIRON_KEY

        url = self.base_url + environ.get("PATH_INFO", "")
        if environ.get("QUERY_STRING"):
            url += "?" + environ["QUERY_STRING"]
        headers = {}
        for key, value in environ.items():
            if key.startswith("HTTP_"):
                name = key[5:].replace("_", "-").title()
                if name.lower() not in HOP_BY_HOP and name.lower() != HEADER.lower():
                    headers[name] = value
        if environ.get("CONTENT_TYPE"):
            headers["Content-Type"] = environ["CONTENT_TYPE"]
        identity = environ.get(ENVIRON_KEY)
        if identity is not None:
            headers[HEADER] = encode_identity(identity, self.secret)
        length = environ.get("CONTENT_LENGTH")
        body = None
        if length and length != "0":
            body = _SizedBody(environ["wsgi.input"], int(length))
        elif environ.get("HTTP_TRANSFER_ENCODING", "").lower() == "chunked":
            body = _stream(environ["wsgi.input"], None)
        try:
            upstream = self.session.request(environ["REQUEST_METHOD"], url, headers=headers, data=body,
                                            stream=True, allow_redirects=False, timeout=(3.0, self.timeout))
        except requests.RequestException as exc:
            raise Unavailable(f"function at {self.base_url} did not answer: {exc.__class__.__name__}",
                              details={"dependency": "function"}) from exc
        out_headers = [(k, v) for k, v in upstream.raw.headers.items() if k.lower() not in HOP_BY_HOP]
        if "Content-Length" in upstream.headers and not upstream.headers.get("Content-Encoding"):
            out_headers.append(("Content-Length", upstream.headers["Content-Length"]))
        start_response(f"{upstream.status_code} {upstream.reason}", out_headers)
        return _Body(upstream)


def _stream(stream, length: int | None, chunk: int = 256 * 1024):
    remaining = length
    while remaining is None or remaining > 0:
        data = stream.read(chunk if remaining is None else min(chunk, remaining))
        if not data:
            break
        if remaining is not None:
            remaining -= len(data)
        yield data


class _SizedBody:
    """A file-like view of the request body with a known length, so requests sends Content-Length."""

    def __init__(self, stream, length: int):
        self.stream, self.remaining, self.length = stream, length, length

    def __len__(self) -> int:
        return self.length

    def read(self, size: int = -1) -> bytes:
        if self.remaining <= 0:
            return b""
        size = self.remaining if size is None or size < 0 else min(size, self.remaining)
        data = self.stream.read(size)
        self.remaining -= len(data)
        return data


class _Body:
    def __init__(self, upstream):
        self.upstream = upstream

    def __iter__(self):
        yield from self.upstream.raw.stream(256 * 1024, decode_content=False)

    def close(self):
        self.upstream.close()
