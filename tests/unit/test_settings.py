import pytest

from runtime.settings import SettingsError, load_settings


def test_defaults_follow_the_contract(tmp_path):
    s = load_settings({"PCLOUD_DATA_DIR": str(tmp_path)})
    assert s.bind == "127.0.0.1:8000"
    assert s.public_url == "http://127.0.0.1:8000"
    assert s.redis_url == "redis://127.0.0.1:6379/0"
    assert s.amqp_url == "amqp://guest:guest@127.0.0.1:5672/%2F"
    assert s.store_url == f"file://{tmp_path}/blobs"
    assert s.push_backend == "log"
    assert (s.trash_days, s.pairing_ack_seconds, s.pairing_confirm_seconds) == (90, 15, 120)
    assert (s.access_token_seconds, s.sso_session_seconds, s.rate_limit_per_minute) == (900, 1209600, 600)
    assert s.google_discovery_url == "https://accounts.google.com/.well-known/openid-configuration"
    assert s.fcm_endpoint == "https://fcm.googleapis.com"
    assert not s.google_enabled and not s.facebook_enabled


@pytest.mark.parametrize(
    "name,value",
    [
        ("PCLOUD_BIND", "nonsense"),
        ("PCLOUD_BIND", "127.0.0.1:99999"),
        ("PCLOUD_TRASH_DAYS", "ninety"),
        ("PCLOUD_ACCESS_TOKEN_SECONDS", "3600"),
        ("PCLOUD_RATE_LIMIT_PER_MINUTE", "0"),
        ("PCLOUD_PUSH_BACKEND", "pigeon"),
        ("PCLOUD_STORE_URL", "ftp://x"),
        ("PCLOUD_MONGO_URL", "postgres://x"),
        ("PCLOUD_SSO_CLIENTS", "{not json"),
        ("PCLOUD_SSO_CLIENTS", '[{"client_id": "a"}]'),
        ("PCLOUD_SSO_CLIENTS", '[{"client_id": "pcloud", "redirect_uris": ["http://x/cb"]}]'),
        ("PCLOUD_PUBLIC_URL", "ftp://x"),
    ],
)
def test_bad_values_fail_at_start_naming_the_variable(name, value):
    with pytest.raises(SettingsError) as info:
        load_settings({name: value})
    assert name in str(info.value)


def test_fcm_backend_without_credentials_is_refused():
    with pytest.raises(SettingsError, match="PCLOUD_FCM_CREDENTIALS"):
        load_settings({"PCLOUD_PUSH_BACKEND": "fcm"})


def test_push_backend_defaults_to_fcm_with_credentials(tmp_path):
    s = load_settings({"PCLOUD_FCM_CREDENTIALS": str(tmp_path / "sa.json")})
    assert s.push_backend == "fcm"


def test_sso_clients_parse_with_origins():
    s = load_settings({"PCLOUD_SSO_CLIENTS": '[{"client_id": "reader", "client_secret": "s", '
                                             '"redirect_uris": ["http://127.0.0.1:5001/cb"], '
                                             '"post_logout_redirect_uris": ["http://127.0.0.1:5001/"]}]'})
    client = s.sso_client("reader")
    assert client is not None and not client.public
    assert client.origins == ("http://127.0.0.1:5001",)
    assert s.sso_client("nobody") is None


def test_function_urls_are_read_per_function():
    s = load_settings({"PCLOUD_FUNCTION_FILES_URL": "http://127.0.0.1:9001/"})
    assert s.function_urls == {"files": "http://127.0.0.1:9001"}


def test_google_drive_is_off_until_its_client_is_set_and_points_at_google(tmp_path):
    s = load_settings({"PCLOUD_DATA_DIR": str(tmp_path), "PCLOUD_GOOGLE_CLIENT_ID": "signin",
                       "PCLOUD_GOOGLE_CLIENT_SECRET": "x"})
    assert not s.gdrive_enabled  # the sign-in client is not taken for Drive access unasked
    assert s.gdrive_token_url == "https://oauth2.googleapis.com/token"
    assert s.gdrive_api_url == "https://www.googleapis.com/drive/v3"
    on = load_settings({"PCLOUD_DATA_DIR": str(tmp_path), "PCLOUD_GDRIVE_CLIENT_ID": "d",
                        "PCLOUD_GDRIVE_CLIENT_SECRET": "s", "PCLOUD_GDRIVE_API_URL": "http://127.0.0.1:9/drive/v3/"})
    assert on.gdrive_enabled and on.gdrive_api_url == "http://127.0.0.1:9/drive/v3"
    with pytest.raises(SettingsError, match="PCLOUD_GDRIVE_TOKEN_URL"):
        load_settings({"PCLOUD_DATA_DIR": str(tmp_path), "PCLOUD_GDRIVE_TOKEN_URL": "ftp://x"})
