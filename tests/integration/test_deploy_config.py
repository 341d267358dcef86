"""The ways ledgerlink is run for real (Dockerfile, compose.yaml, the systemd units) say
what the product does: every process they start is a real ``ledgerlink`` command, every
setting they set is one ``Settings`` knows (with a valid value), ports, volumes and secrets
line up, no secret is baked in, and the same processes compose would start (migrate, web
and two workers on PostgreSQL) come up ready and run a job.

This machine has no container runtime (a docker client without a daemon or the compose
plugin), so the compose file is checked here and its processes are started without
containers, through the image's own entry point.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.fernet import Fernet
from ruamel.yaml import YAML
from sqlalchemy.engine import make_url

from ledgerlink.jobs.port import job_queue
from ledgerlink.jobs.registry import load_task_modules
from ledgerlink.settings import Settings
from ledgerlink.store.db import Database
from tests.support.cli import cli
from tests.support.databases import PostgresFactory
from tests.support.job_tasks import TASK_MODULE, create_effects_table, effects_of
from tests.support.waiting import wait_until

REPO = Path(__file__).resolve().parents[2]
COMPOSE = REPO / "compose.yaml"
DOCKERFILE = REPO / "Dockerfile"
ENTRYPOINT = REPO / "deploy" / "docker" / "entrypoint.sh"
UNITS = REPO / "deploy" / "systemd"
#: This file's ports (9520-9539 are this test area's).
WEB_PORT = 9521

_INTERPOLATION = re.compile(r"\$\{(\w+)(?::?-([^}]*))?\}")


def _interpolate(value: Any) -> Any:
    """Compose's ``${NAME:-default}`` with nothing set in the environment: the default."""
    if isinstance(value, str):
        return _INTERPOLATION.sub(lambda m: m.group(2) or "", value)
    return value


def _compose() -> dict[str, Any]:
    document: dict[str, Any] = YAML(typ="safe").load(COMPOSE.read_text())
    return document


def _ledgerlink_services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        name: service
        for name, service in compose["services"].items()
        if str(_interpolate(service.get("image", ""))).startswith("ledgerlink")
    }


def _environment(service: dict[str, Any]) -> dict[str, str]:
    return {name: str(_interpolate(value)) for name, value in service["environment"].items()}


def _known_setting(name: str) -> bool:
    field = name.removeprefix("LEDGERLINK_").lower()
    return name.startswith("LEDGERLINK_") and field in Settings.model_fields


def test_every_compose_process_is_a_ledgerlink_command_with_known_settings() -> None:
    services = _ledgerlink_services(_compose())
    assert {"migrate", "web", "worker", "admin"} <= set(services), services.keys()

    for name, service in services.items():
        command = service["command"]
        args = command if "--help" in command else [*command, "--help"]
        assert cli(args, {}).strip(), f"{name}: `ledgerlink {' '.join(args)}` printed nothing"

        environment = _environment(service)
        unknown = [k for k in environment if k.startswith("LEDGERLINK_") and not _known_setting(k)]
        assert not unknown, f"{name}: settings ledgerlink does not know: {unknown}"
        other = set(environment) - {k for k in environment if k.startswith("LEDGERLINK_")}
        assert other <= {"PGPASSWORD_FILE"}, f"{name}: {other}"  # the entry point's
        values = {k.removeprefix("LEDGERLINK_").lower(): v for k, v in environment.items()}
        settings = Settings(
            **{k: v for k, v in values.items() if k in Settings.model_fields},
            _env_file=None,  # type: ignore[call-arg]
        )
        assert settings.is_postgresql, f"{name} must use PostgreSQL (procrastinate)"
        url = make_url(settings.resolved_database_url)
        assert url.password is None, f"{name}: the password belongs in a secret, not the URL"


def test_compose_ports_volumes_and_secrets_line_up() -> None:
    compose = _compose()
    services = _ledgerlink_services(compose)
    declared_volumes = set(compose["volumes"])
    declared_secrets = set(compose["secrets"])

    for name, service in compose["services"].items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if not source.startswith((".", "/")):
                assert source in declared_volumes, f"{name}: volume {source} is not declared"
        for secret in service.get("secrets", []):
            assert secret in declared_secrets, f"{name}: secret {secret} is not declared"
        for other in service.get("depends_on", {}):
            assert other in compose["services"], f"{name} depends on unknown {other}"
    for secret in compose["secrets"].values():
        assert secret["file"].startswith("./secrets/"), secret  # outside the image

    for name, service in services.items():
        environment = _environment(service)
        mounts = {v.split(":")[1] for v in service["volumes"]}
        assert environment["LEDGERLINK_VAR_DIR"] in mounts, f"{name}: var dir is not a volume"
        key_dir = str(Path(environment["LEDGERLINK_VAULT_KEY_FILE"]).parent)
        assert key_dir in mounts, f"{name}: the vault key is not mounted"
        password = Path(environment["PGPASSWORD_FILE"])
        assert str(password.parent) == "/run/secrets", name
        assert password.name in service["secrets"], f"{name}: {password.name} not given"
        if name != "admin":
            assert f"{key_dir}:ro" in " ".join(service["volumes"]), f"{name}: key writable"

    web = services["web"]
    port = int(_environment(web)["LEDGERLINK_PORT"])
    host, _published, container = web["ports"][0].split(":")
    assert host == "127.0.0.1", "the web port is published on loopback, behind a TLS proxy"
    assert int(container) == port
    assert f":{port}/readyz" in " ".join(web["healthcheck"]["test"])
    assert services["worker"]["deploy"]["replicas"] >= 2
    assert services["worker"]["healthcheck"] == {"disable": True}
    db = compose["services"]["db"]
    assert make_url(_environment(web)["LEDGERLINK_DATABASE_URL"]).host == "db"
    assert db["environment"]["POSTGRES_PASSWORD_FILE"] == "/run/secrets/postgres_password"


def test_the_image_installs_from_the_lock_runs_unprivileged_and_checks_readiness() -> None:
    text = DOCKERFILE.read_text()
    instructions = [
        line.split(None, 1)
        for line in re.sub(r"\\\n", " ", text).splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]
    froms = [rest for word, rest in instructions if word == "FROM"]
    assert any("python:3.11-slim" in line for line in re.findall(r"PYTHON_IMAGE=(\S+)", text))
    assert len(froms) == 2, froms
    runs = " ".join(rest for word, rest in instructions if word == "RUN")
    assert "uv sync --frozen --no-dev --no-editable" in runs
    copies = " ".join(rest for word, rest in instructions if word == "COPY")
    assert "uv.lock" in copies
    users = [rest.strip() for word, rest in instructions if word == "USER"]
    assert users
    assert not users[-1].startswith(("root", "0")), users
    health = " ".join(rest for word, rest in instructions if word == "HEALTHCHECK")
    assert "/readyz" in health
    expose = [rest.strip() for word, rest in instructions if word == "EXPOSE"]
    env = " ".join(rest for word, rest in instructions if word == "ENV")
    assert f"LEDGERLINK_PORT={expose[0]}" in env
    for word, rest in instructions:
        if word == "ENV":
            for name in re.findall(r"(LEDGERLINK_\w+)=", rest):
                assert _known_setting(name), name
    assert not re.search(r"VAULT_KEYS?=|PASSWORD=", text), "a secret is baked into the image"
    ignored = [
        line.strip()
        for line in (REPO / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert ignored[0] == "*", "the build context is an allow-list"
    assert "!var/" not in ignored
    assert os.access(ENTRYPOINT, os.X_OK)


def test_the_systemd_units_verify(tmp_path: Path) -> None:
    units = sorted(UNITS.glob("*.service")) + sorted(UNITS.glob("*.target"))
    assert {u.name for u in units} >= {"ledgerlink-web.service", "ledgerlink-worker@.service"}
    executable = Path(sys.executable).parent / "ledgerlink"
    for unit in units:
        text = unit.read_text()
        if unit.suffix == ".service":
            assert "NoNewPrivileges=yes" in text, unit.name
            assert "ProtectSystem=strict" in text, unit.name
            assert "LoadCredential=vault.key:" in text, unit.name
            for name in re.findall(r"Environment=(LEDGERLINK_\w+)=", text):
                assert _known_setting(name), f"{unit.name}: {name}"
        # Point ExecStart at this checkout's ledgerlink, as /opt/ledgerlink would hold it.
        (tmp_path / unit.name).write_text(
            text.replace("/opt/ledgerlink/bin/ledgerlink", str(executable))
        )
    for line in (UNITS / "ledgerlink.env.example").read_text().splitlines():
        if line and not line.startswith("#"):
            assert _known_setting(line.split("=", 1)[0]), line
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed; the units were parsed only")
    names = [u.name.replace("@.service", "@1.service") for u in units]
    done = subprocess.run(
        [analyze, "verify", "--man=no", *names],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    # verify only warns (exit 0) about an unknown key; any message at all is a finding.
    assert done.returncode == 0, done.stderr
    assert not done.stderr.strip(), done.stderr


# -- the same processes, without containers ------------------------------------------------


@pytest.fixture
def compose_env(postgres_factory: PostgresFactory, tmp_path: Path) -> Iterator[dict[str, str]]:
    """compose.yaml's web environment, pointed at a fresh test database and this test's
    files instead of the containers' mounts."""
    url = postgres_factory.create(tmp_path)
    environment = _environment(_ledgerlink_services(_compose())["web"])
    key_file = tmp_path / "vault" / "vault.key"
    key_file.parent.mkdir(mode=0o700)
    key_file.write_text(Fernet.generate_key().decode() + "\n")
    key_file.chmod(0o600)
    password_file = tmp_path / "postgres_password"
    password_file.write_text(make_url(url).password or "trust-auth-needs-none")
    environment.update(
        LEDGERLINK_DATABASE_URL=make_url(url).set(password=None).render_as_string(False),
        PGPASSWORD_FILE=str(password_file),
        LEDGERLINK_VAULT_KEY_FILE=str(key_file),
        LEDGERLINK_VAR_DIR=str(tmp_path / "var"),
        LEDGERLINK_HOST="127.0.0.1",
        LEDGERLINK_PORT=str(WEB_PORT),
        LEDGERLINK_TASK_MODULES=json.dumps([TASK_MODULE]),  # the test's job
        LEDGERLINK_WORKER_HEARTBEAT_SECONDS="0.5",
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LEDGERLINK_", "PG"))}
    env.update(environment)
    env.update(PATH=f"{Path(sys.executable).parent}:{env['PATH']}", PYTHONPATH=str(REPO))
    yield env
    postgres_factory.drop(url)


@contextmanager
def _process(
    command: list[str], env: dict[str, str], log: Path
) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("wb") as out:
        process = subprocess.Popen(
            ["sh", str(ENTRYPOINT), *command],
            env=env,
            cwd=log.parent,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        try:
            yield process
        finally:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(15)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait(5)


@pytest.mark.slow
@pytest.mark.postgresql
def test_migrate_web_and_two_workers_come_up_ready_and_run_a_job(
    compose_env: dict[str, str], tmp_path: Path
) -> None:
    services = _ledgerlink_services(_compose())
    migrated = subprocess.run(
        ["sh", str(ENTRYPOINT), *services["migrate"]["command"]],
        env=compose_env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert migrated.returncode == 0, migrated.stderr
    settings = Settings(
        database_url=compose_env["LEDGERLINK_DATABASE_URL"],
        var_dir=tmp_path / "var",
        vault_key_file=Path(compose_env["LEDGERLINK_VAULT_KEY_FILE"]),
        task_modules=[TASK_MODULE],
        _env_file=None,  # type: ignore[call-arg]
    )
    db = Database(settings.resolved_database_url)
    create_effects_table(db)
    load_task_modules(settings)
    queue = job_queue(settings, db)
    base = f"http://127.0.0.1:{WEB_PORT}"
    try:
        with ExitStack() as processes:
            web = processes.enter_context(
                _process(services["web"]["command"], compose_env, tmp_path / "web.log")
            )
            workers = [
                processes.enter_context(
                    _process(services["worker"]["command"], compose_env, tmp_path / f"w{n}.log")
                )
                for n in range(services["worker"]["deploy"]["replicas"])
            ]

            def ready() -> dict[str, Any] | None:
                assert web.poll() is None, (tmp_path / "web.log").read_text()[-2000:]
                try:
                    answer = httpx.get(f"{base}/readyz", timeout=2)
                except httpx.TransportError:
                    return None
                body: dict[str, Any] = answer.json()
                if answer.status_code == 200 and body["checks"]["jobs"]["live_workers"] == 2:
                    return body
                return None

            # Seconds on an idle machine; the web process imports every route (3 s of CPU)
            # and took 85 s with eight engineers' tests on the same two cores.
            body = wait_until(ready, timeout=120, interval=0.2, what=f"/readyz; logs in {tmp_path}")
            assert body["checks"]["database"] == {"ok": True, "backend": "postgresql"}
            with db.transaction() as session:
                queue.enqueue(session, "test.record", {"label": "compose"})
            ran = wait_until(
                lambda: effects_of(db, "compose", "ran"), timeout=15, what="the job to run"
            )
            assert ran[0].pid in {w.pid for w in workers}  # the entry point execs
    finally:
        db.dispose()
