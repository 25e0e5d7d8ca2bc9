"""`python -m functions.sso.cli rotate-keys`: a rotation breaks no live token; the next one drops the old key."""

from __future__ import annotations

import stat

import pytest

from functions.sso import cli
from runtime.errors import Unauthorized
from runtime.keys import KeyStore
from runtime.settings import Settings
from runtime.tokens import TokenVerifier, issue_access_token


def test_rotate_keys_keeps_the_previous_key_published(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("PCLOUD_DATA_DIR", str(tmp_path))
    settings = Settings(public_url="http://127.0.0.1:8000", data_dir=tmp_path)
    keys = KeyStore(tmp_path)
    old_token, _ = issue_access_token(keys, settings, sub="u1", aud="pcloud")
    first_kid = keys.current.kid

    assert cli.main(["rotate-keys"]) == 0
    assert first_kid in capsys.readouterr().out
    fresh = KeyStore(tmp_path)  # another process sees the file
    kids = [k["kid"] for k in fresh.public_jwks()["keys"]]
    assert len(kids) == 2 and kids[1] == first_kid and kids[0] != first_kid
    verifier = TokenVerifier(fresh.public_jwks, settings.public_url, {"pcloud"}, refresh_interval=0)
    assert verifier.verify(old_token)["sub"] == "u1"
    new_token, _ = issue_access_token(fresh, settings, sub="u2", aud="pcloud")
    assert verifier.verify(new_token)["sub"] == "u2"
    assert stat.S_IMODE((tmp_path / "keys" / "signing-keys.json").stat().st_mode) == 0o600

    assert cli.main(["rotate-keys"]) == 0
    later = TokenVerifier(KeyStore(tmp_path).public_jwks, settings.public_url, {"pcloud"}, refresh_interval=0)
    assert later.verify(new_token)["sub"] == "u2"
    with pytest.raises(Unauthorized):
        later.verify(old_token)
    assert cli.main(["show-keys"]) == 0
    assert "current" in capsys.readouterr().out
