"""Signing keys and secrets, generated on first start under PCLOUD_DATA_DIR and never committed.

The JWKS publishes the current and the previous key, so a rotation breaks no token still alive.
"""

from __future__ import annotations

import json
import os
import secrets
import threading
import time
from pathlib import Path

from joserfc import jwt
from joserfc.jwk import KeySet, RSAKey


class KeyStore:
    ALG = "RS256"

    def __init__(self, data_dir: Path):
        self.dir = Path(data_dir) / "keys"
        self.secret_dir = Path(data_dir) / "secrets"
        self._lock = threading.Lock()
        self._keys: list[RSAKey] | None = None
        self._mtime = None

    # --- signing keys -------------------------------------------------------------
    def _path(self) -> Path:
        return self.dir / "signing-keys.json"

    def _load(self) -> list[RSAKey]:
        path = self._path()
        with self._lock:
            mtime = path.stat().st_mtime_ns if path.exists() else None
            if self._keys is not None and mtime == self._mtime:
                return self._keys
            if mtime is None:
                self._write([self._generate()])
                mtime = path.stat().st_mtime_ns
            data = json.loads(path.read_text())
            self._keys = [RSAKey.import_key(k) for k in data["keys"]]
            self._mtime = mtime
            return self._keys

    def _generate(self) -> RSAKey:
        key = RSAKey.generate_key(2048, private=True)
        key.ensure_kid()
        return key

    def _write(self, keys: list[RSAKey]) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        os.chmod(self.dir, 0o700)
        body = {"keys": [{**k.as_dict(private=True), "kid": k.kid, "created": int(time.time())} for k in keys]}
        tmp = self._path().with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            json.dump(body, fh)
        os.replace(tmp, self._path())

    @property
    def current(self) -> RSAKey:
        return self._load()[0]

    def rotate(self) -> str:
        """New current key; the old current stays published as the previous one; older ones are dropped."""
        keys = self._load()
        new = self._generate()
        self._write([new, keys[0]])
        self._keys = None
        return new.kid

    def public_jwks(self) -> dict:
        return {"keys": [{**k.as_dict(private=False), "kid": k.kid, "use": "sig", "alg": self.ALG}
                         for k in self._load()]}

    def public_keyset(self) -> KeySet:
        return KeySet.import_key_set(self.public_jwks())

    def sign(self, claims: dict, headers: dict | None = None) -> str:
        key = self.current
        header = {"alg": self.ALG, "kid": key.kid, "typ": "JWT", **(headers or {})}
        return jwt.encode(header, claims, key, algorithms=[self.ALG])

    # --- symmetric secrets ----------------------------------------------------------
    def secret(self, name: str) -> bytes:
        """A 32-byte secret kept in $PCLOUD_DATA_DIR/secrets/<name> (HMAC for blob URLs, proxy identity…)."""
        path = self.secret_dir / name
        if not path.exists():
            self.secret_dir.mkdir(parents=True, exist_ok=True)
            os.chmod(self.secret_dir, 0o700)
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                with os.fdopen(fd, "w") as fh:
                    fh.write(secrets.token_hex(32))
            except FileExistsError:
                pass
        return bytes.fromhex(path.read_text().strip())
