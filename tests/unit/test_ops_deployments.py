"""The deployment files, validated without Docker or a cluster (issue 20).

- infra/docker-compose.yml against the Compose Specification JSON Schema (vendored: infra/schemas/compose-spec.json,
  from github.com/compose-spec/compose-spec, Apache-2.0), plus the rules the issue lists;
- infra/k8s/pcloud.yaml against the Kubernetes OpenAPI schemas (kubernetes-validate, strict: unknown fields fail);
- every PCLOUD_* either file sets is a setting runtime/settings.py reads, the values load, and every setting a
  deployment needs is set; every Procfile process (but the demo ones) is deployed with the Procfile's command.
"""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import jsonschema
import kubernetes_validate
import pytest
import yaml

from runtime.settings import load_settings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "infra" / "docker-compose.yml"
K8S = ROOT / "infra" / "k8s" / "pcloud.yaml"
DEMO_PROCESSES = {"nas", "demo-google"}  # Procfile lines for `make run` only: never deployed
BACKING = {"mongo", "redis", "rabbitmq", "seaweedfs"}
# what a deployment must set: the defaults are for one developer's laptop (loopback, ./var, guest)
REQUIRED = {"PCLOUD_BIND", "PCLOUD_PUBLIC_URL", "PCLOUD_DATA_DIR", "PCLOUD_MONGO_URL", "PCLOUD_REDIS_URL",
            "PCLOUD_AMQP_URL", "PCLOUD_STORE_URL"}


class Recorder(dict):
    """An environment that remembers which variables load_settings asked for."""

    def __init__(self, *args):
        super().__init__(*args)
        self.read: set[str] = set()

    def get(self, key, default=None):
        self.read.add(key)
        return super().get(key, default)

    def __getitem__(self, key):
        self.read.add(key)
        return super().__getitem__(key)

    def items(self):
        self.read.update(k for k in self if k.startswith("PCLOUD_FUNCTION_"))
        return super().items()


def procfile() -> dict[str, list[str]]:
    found = {}
    for line in (ROOT / "Procfile").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, command = line.split(":", 1)
            words = [w for w in shlex.split(command) if w != "exec"]
            words[0] = words[0].removeprefix(".venv/bin/")  # the image installs into the system Python
            found[name.strip()] = words
    return found


def example_values() -> dict[str, str]:
    values = {}
    for line in (ROOT / "infra" / "compose.env.example").read_text().splitlines():
        if "=" in line and not line.startswith("#"):
            key, value = line.split("=", 1)
            values[key] = value or f"example-{key.lower()}"
    return values


def interpolate(text: str, values: dict[str, str]) -> str:
    """Compose's ${VAR}, ${VAR:-default} and ${VAR:?error}: a missing required one fails like compose does."""

    def one(match: re.Match) -> str:
        name, op, arg = match.group(1), match.group(2), match.group(3)
        if name in values:
            return values[name]
        if op == ":?":
            raise AssertionError(f"{name} is required by the compose file but not in compose.env.example")
        return arg or ""

    return re.sub(r"\$\{([A-Z0-9_]+)(?:(:[-?])([^}]*))?\}", one, text)


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(interpolate(COMPOSE.read_text(), example_values()))


@pytest.fixture(scope="module")
def k8s() -> list[dict]:
    return [d for d in yaml.safe_load_all(K8S.read_text()) if d]


def test_compose_file_matches_the_compose_specification(compose):
    schema = json.loads((ROOT / "infra" / "schemas" / "compose-spec.json").read_text())
    errors = sorted(jsonschema.Draft7Validator(schema).iter_errors(compose), key=lambda e: list(e.absolute_path))
    assert [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in errors] == []
    broken = yaml.safe_load(COMPOSE.read_text().replace("healthcheck:", "health_check:", 1))
    assert list(jsonschema.Draft7Validator(schema).iter_errors(broken))  # the schema does catch mistakes


def test_compose_services_restart_wait_for_health_and_pin_their_images(compose):
    services = compose["services"]
    for name, service in services.items():
        assert service.get("restart") == "unless-stopped", name
        image = service["image"]
        assert ":" in image and not image.endswith((":latest", ":")), f"{name}: image {image} is not pinned"
        if name in BACKING:
            assert "healthcheck" in service, f"{name} has no health check"
        else:
            assert service["depends_on"] == {b: {"condition": "service_healthy"} for b in BACKING}, name
    assert "healthcheck" in services["web"]
    assert not any(s["image"].startswith(("minio/", "quay.io/minio")) for s in services.values())
    assert "host: 'mongo:27017'" in services["mongo"]["healthcheck"]["test"][-1]  # the service name, not hostname


def test_compose_has_no_guest_account_and_a_client_reachable_store(compose):
    text = json.dumps(compose)  # what compose reads (no comments)
    assert "guest" not in text
    rabbit = compose["services"]["rabbitmq"]
    assert rabbit["environment"]["RABBITMQ_DEFAULT_USER"] == "pcloud" and rabbit["environment"]["RABBITMQ_DEFAULT_PASS"]
    env = compose["services"]["web"]["environment"]
    assert "public_endpoint=https://s3.cloud.example.org" in env["PCLOUD_STORE_URL"]
    assert "endpoint=http://seaweedfs:8333" in env["PCLOUD_STORE_URL"]
    assert "minio" not in text.lower()


def test_compose_deploys_every_procfile_process_with_its_command(compose):
    expected = {k: v for k, v in procfile().items() if k not in DEMO_PROCESSES}
    deployed = {k: s["command"] for k, s in compose["services"].items() if k not in BACKING}
    assert deployed == expected


def _check_env(env: dict[str, str], where: str) -> None:
    pcloud = {k for k in env if k.startswith("PCLOUD_")}
    missing = REQUIRED - pcloud
    assert not missing, f"{where} does not set {sorted(missing)}"
    recorder = Recorder(env)
    settings = load_settings(recorder)  # every value parses
    unknown = sorted(pcloud - recorder.read)
    assert not unknown, f"{where} sets {unknown}, which runtime/settings.py never reads"
    assert not settings.demo_signin and settings.is_https, where
    assert "guest:guest" not in settings.amqp_url, where


def test_compose_settings_are_real_settings_and_complete(compose):
    for name, service in compose["services"].items():
        if name not in BACKING:
            _check_env(service["environment"], f"compose service {name}")


def test_kubernetes_manifests_validate_against_the_schemas(k8s):
    for doc in k8s:
        kubernetes_validate.validate(doc, kubernetes_validate.latest_version(), strict=True)
    bad = json.loads(json.dumps(next(d for d in k8s if d["kind"] == "Deployment")))
    bad["spec"]["template"]["spec"]["containers"][0]["livenessProbe"]["periodSecond"] = 10
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(bad, kubernetes_validate.latest_version(), strict=True)


def test_kubernetes_one_deployment_per_process_with_probes_limits_and_a_locked_down_pod(k8s):
    deployments = {d["metadata"]["name"]: d for d in k8s if d["kind"] == "Deployment"}
    expected = {f"pcloud-{k}": v for k, v in procfile().items() if k not in DEMO_PROCESSES}
    assert {name: d["spec"]["template"]["spec"]["containers"][0]["command"] for name, d in deployments.items()} \
        == expected
    for name, d in deployments.items():
        pod = d["spec"]["template"]["spec"]
        (container,) = pod["containers"]
        assert container["resources"]["requests"] and container["resources"]["limits"]["memory"], name
        assert "livenessProbe" in container, name
        assert pod["securityContext"]["runAsNonRoot"] and container["securityContext"]["allowPrivilegeEscalation"] \
            is False and container["securityContext"]["capabilities"]["drop"] == ["ALL"], name
        volumes = {v["name"]: v for v in pod["volumes"]}
        mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
        assert "emptyDir" in volumes[mounts["/metrics"]], f"{name}: metrics must be per pod"
        refs = [e.get("secretRef", e.get("configMapRef"))["name"] for e in container["envFrom"]]
        assert refs == ["pcloud-config", "pcloud-secrets"], name
    web = deployments["pcloud-web"]["spec"]["template"]["spec"]["containers"][0]
    assert web["readinessProbe"]["httpGet"]["path"] == "/readyz" and web["livenessProbe"]["httpGet"]["path"] == \
        "/healthz"
    assert deployments["pcloud-scheduler"]["spec"]["replicas"] == 1


def test_kubernetes_settings_are_real_settings_and_complete(k8s):
    config = next(d for d in k8s if d["kind"] == "ConfigMap" and d["metadata"]["name"] == "pcloud-config")
    secret = next(d for d in k8s if d["kind"] == "Secret" and d["metadata"]["name"] == "pcloud-secrets")
    env = {**config["data"], **secret["stringData"]}
    assert not set(config["data"]) & set(secret["stringData"])
    _check_env(env, "the Kubernetes ConfigMap and Secret")
    assert config["data"]["PROMETHEUS_MULTIPROC_DIR"] == "/metrics"
    assert env["PCLOUD_SEARCH_URL"], "several pods cannot share the embedded search index"
    secret_names = {"PCLOUD_AMQP_URL", "PCLOUD_GOOGLE_CLIENT_SECRET", "PCLOUD_SEARCH_API_KEY", "AWS_SECRET_ACCESS_KEY"}
    assert secret_names <= set(secret["stringData"]) and not secret_names & set(config["data"])
    assert all(v.count("CHANGE-ME") for k, v in secret["stringData"].items() if k in secret_names)


def test_dockerfile_and_dockerignore_keep_state_tests_and_dev_tools_out():
    ignored = (ROOT / ".dockerignore").read_text().split()
    for entry in (".venv", "var/", "tests/", "bench/", ".git"):
        assert entry in ignored
    dockerfile = (ROOT / "infra" / "Dockerfile").read_text()
    assert "requirements-runtime.txt" in dockerfile and "-r requirements.txt" not in dockerfile
    assert re.search(r"^USER 10001", dockerfile, re.M)
    runtime_reqs = (ROOT / "requirements-runtime.txt").read_text()
    for dev_only in ("pytest", "moto", "playwright", "ruff", "SecantusDB", "hypothesis", "import-linter"):
        assert f"\n{dev_only}" not in runtime_reqs, dev_only
    assert "-r requirements-runtime.txt" in (ROOT / "requirements.txt").read_text()
    for env_line in re.findall(r"(PCLOUD_[A-Z_]+)=", dockerfile):
        recorder = Recorder({env_line: "/data" if env_line == "PCLOUD_DATA_DIR" else "0.0.0.0:8000"})
        load_settings(recorder)
        assert env_line in recorder.read


def test_systemd_target_runs_every_production_process_through_the_procfile():
    import subprocess

    target = (ROOT / "infra" / "systemd" / "pcloud.target").read_text()
    wanted = set(re.findall(r"pcloud@([a-z0-9-]+)\.service", target))
    commands = procfile()
    assert wanted == set(commands) - DEMO_PROCESSES
    for name in wanted:
        got = subprocess.run(["bash", "infra/procfile-exec.sh", "--print", name], cwd=ROOT, capture_output=True,
                             text=True, timeout=10)
        assert got.returncode == 0 and got.stdout.split()[1:] == commands[name][1:], name
    for name in DEMO_PROCESSES | {"no-such-process"}:
        got = subprocess.run(["bash", "infra/procfile-exec.sh", "--print", name], cwd=ROOT, capture_output=True,
                             text=True, timeout=10)
        assert got.returncode == 2 and got.stderr, name
    unit = (ROOT / "infra" / "systemd" / "pcloud@.service").read_text()
    assert "ExecStart=/opt/pcloud/infra/procfile-exec.sh %i" in unit and "Restart=always" in unit
    assert "DEMO" not in unit


def test_the_pcloud_console_script_names_the_cli():
    import importlib
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    module, _, attr = project["project"]["scripts"]["pcloud"].partition(":")
    assert callable(getattr(importlib.import_module(module), attr))
    assert "pcloud_cli*" in project["tool"]["setuptools"]["packages"]["find"]["include"]
    assert "pip install -q --no-deps -e ." in (ROOT / "Makefile").read_text()
