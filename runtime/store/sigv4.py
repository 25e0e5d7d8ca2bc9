"""Many presigned S3 PUTs at once: botocore signs the first, we sign the rest with the same SigV4 signing key.

botocore costs ~0.2 ms per `generate_presigned_url` (a request object, handlers, a fresh key derivation), which
is 2 s for the 10,000 blocks of a 40 GiB file. Every URL of one batch differs only in its object key, its
Content-Length and its checksum header, so after botocore has signed the first one (deciding endpoint,
addressing style, credentials, session token and date), the rest need one SHA-256 and one HMAC each with the
day's derived signing key (AWS SigV4: kSigning = HMAC chain over date, region, service). Each batch checks
our signature of its first URL against botocore's own; on any difference the whole batch falls back to
botocore (and a warning is logged), so a botocore change can cost speed but never a wrong URL.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from functools import lru_cache
from urllib.parse import parse_qsl, quote, urlsplit

log = logging.getLogger(__name__)

ALGORITHM = "AWS4-HMAC-SHA256"
UNSIGNED = "UNSIGNED-PAYLOAD"
PUT_SIGNED_HEADERS = "content-length;host;x-amz-checksum-sha256"


@lru_cache(maxsize=16)
def signing_key(secret: str, date: str, region: str, service: str) -> bytes:
    """kSigning of SigV4; valid for one day, region and service, so it is derived once per day."""
    key = hmac.new(f"AWS4{secret}".encode(), date.encode(), hashlib.sha256).digest()
    for part in (region, service, "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return key


def _canonical_host(parts) -> str:
    """The Host header botocore signs: the netloc without a default port."""
    host = parts.netloc
    if (parts.scheme == "http" and host.endswith(":80")) or (parts.scheme == "https" and host.endswith(":443")):
        host = host.rsplit(":", 1)[0]
    return host


class PutTemplate:
    """What a botocore-presigned PUT says about every PUT of the same batch (all but key, length, checksum)."""

    def __init__(self, url: str, key: str, secret: str):
        parts = urlsplit(url)
        if not parts.path.endswith("/" + key):
            raise ValueError("the object key is not the end of the URL path")
        self.prefix = f"{parts.scheme}://{parts.netloc}{parts.path[:-len(key)]}"
        self.path_prefix = parts.path[:-len(key)]
        query = parse_qsl(parts.query, keep_blank_values=True, strict_parsing=True)
        fields = dict(query)
        if len(fields) != len(query) or fields.get("X-Amz-Algorithm") != ALGORITHM \
                or fields.get("X-Amz-SignedHeaders") != PUT_SIGNED_HEADERS:
            raise ValueError("not a SigV4 query-signed PUT of the expected headers")
        self.signature = fields.pop("X-Amz-Signature")
        self.amz_date = fields["X-Amz-Date"]
        _access, date, region, service, terminator = fields["X-Amz-Credential"].split("/")
        if terminator != "aws4_request" or not self.amz_date.startswith(date):
            raise ValueError("unexpected credential scope")
        self.scope = f"{date}/{region}/{service}/aws4_request"
        self.key = signing_key(secret, date, region, service)
        self.host = _canonical_host(parts)
        # every URL of the batch carries the same query; only the signature at its end differs
        self.query = parts.query[:parts.query.index("X-Amz-Signature=")].rstrip("&")
        self.canonical_query = "&".join(f"{quote(k, safe='-_.~')}={quote(v, safe='-_.~')}"
                                        for k, v in sorted(fields.items()))

    def sign(self, key: str, size: int, checksum: str) -> str:
        canonical = (f"PUT\n{self.path_prefix}{key}\n{self.canonical_query}\n"
                     f"content-length:{size}\nhost:{self.host}\nx-amz-checksum-sha256:{checksum}\n\n"
                     f"{PUT_SIGNED_HEADERS}\n{UNSIGNED}")
        to_sign = f"{ALGORITHM}\n{self.amz_date}\n{self.scope}\n{hashlib.sha256(canonical.encode()).hexdigest()}"
        return hmac.new(self.key, to_sign.encode(), hashlib.sha256).hexdigest()

    def url(self, key: str, size: int, checksum: str) -> str:
        sep = "&" if self.query else ""
        return f"{self.prefix}{key}?{self.query}{sep}X-Amz-Signature={self.sign(key, size, checksum)}"


def template_for(url: str, key: str, size: int, checksum: str, secret: str | None) -> PutTemplate | None:
    """A template from botocore's URL for `key`, or None when our signature of it would differ (fall back)."""
    if not secret:
        return None
    try:
        template = PutTemplate(url, key, secret)
    except (ValueError, KeyError) as exc:
        log.warning("presigning every URL with botocore: its URL has an unexpected shape (%s)", exc)
        return None
    if template.url(key, size, checksum) != url:
        log.warning("presigning every URL with botocore: our SigV4 URL differs from botocore's")
        return None
    return template
