"""The REST API under schemathesis: generated requests (examples, boundary values, valid
and invalid data, and stateful sequences that reuse what one call created) for every
operation of the OpenAPI document, sent over real HTTP with an administrator's API token,
on SQLite and PostgreSQL. Every answer must be documented (status code, media type, body
schema, the Allow header of a 405) and none may be a server error.

It runs schemathesis' own command line, as one would by hand, against the app served on
a loopback port: bounded (a fixed number of examples per operation), seeded and
deterministic. ``LEDGERLINK_FUZZ_EXAMPLES=200`` runs a larger fuzz.

Left out, each for a stated reason (their input checks are the same shared types, tested
in ``test_bad_input.py``):

* the operations that act on the external system a connection names: a fuzzed connection
  names arbitrary hosts, files and folders (the vendors' real hosts by default, a Sage 500
  SQL URL, a drop folder), so fuzzing them would reach out to the internet or write where
  the fuzzer says;
* ``positive_data_acceptance``: a schema-valid request may still break a business rule (a
  password too short, a level that does not exist), and a 422 naming the field is the
  right answer there.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from ledgerlink.identity.roles import Role
from ledgerlink.settings import Settings
from ledgerlink.store.db import Database
from ledgerlink.web.app import create_app
from tests.support import fuzz_hooks
from tests.support.asgi_server import serve_in_thread
from tests.support.web import make_user

MAX_EXAMPLES = int(os.environ.get("LEDGERLINK_FUZZ_EXAMPLES", "8"))
SEED = 16

#: Operations that reach the external system a connection names (see the module doc).
REACH_OUT = (
    ("POST", "/api/v1/connections/{connection_id}/test"),
    ("POST", "/api/v1/payments/poll"),
    ("POST", "/api/v1/payments/charges"),
    ("POST", "/api/v1/payments/pay-links"),
    ("GET", "/api/v1/members/{number}/candidates"),
    ("POST", "/api/v1/members/{number}/links"),
)


def _exclusions() -> list[str]:
    expression = " or ".join(
        f"(method == '{method}' and path == '{path}')" for method, path in REACH_OUT
    )
    return ["--exclude-by", expression]


@pytest.mark.slow  # schemathesis over every operation, a real server
def test_fuzzed_requests_get_documented_answers_and_never_a_server_error(
    settings: Settings, db: Database, tmp_path: Path
) -> None:
    settings.run_embedded_worker = False  # jobs are enqueued, never run against fuzzed data
    token = make_user(db, Role.ADMIN).token
    auth = {"Authorization": f"Bearer {token}"}
    report = tmp_path / "schemathesis.json"
    with serve_in_thread(create_app(settings)) as base_url:
        me = requests.get(f"{base_url}/api/v1/me", headers=auth, timeout=10).json()
        [own_token] = requests.get(
            f"{base_url}/api/v1/users/{me['user_id']}/tokens", headers=auth, timeout=10
        ).json()
        run = subprocess.run(
            [
                str(Path(sys.executable).parent / "schemathesis"),
                "run",
                f"{base_url}/api/v1/openapi.json",
                "--header",
                f"Authorization: Bearer {token}",
                "--checks",
                "all",
                "--exclude-checks",
                "positive_data_acceptance",
                *_exclusions(),
                "--max-examples",
                str(MAX_EXAMPLES),
                "--seed",
                str(SEED),
                "--generation-deterministic",
                "--suppress-health-check",
                "all",
                "--workers",
                "1",
                "--request-timeout",
                "30",
                "--no-color",
                "--report",
                "json",
                "--report-json-path",
                str(report),
            ],
            capture_output=True,
            text=True,
            timeout=600,
            cwd=tmp_path,  # schemathesis keeps a cache directory where it runs
            env={
                **os.environ,
                "SCHEMATHESIS_HOOKS": fuzz_hooks.__file__,
                "LEDGERLINK_FUZZ_OWN_USER_ID": str(me["user_id"]),
                "LEDGERLINK_FUZZ_OWN_TOKEN_ID": str(own_token["id"]),
            },
        )
    output = tmp_path / "schemathesis.txt"
    output.write_text(run.stdout + run.stderr)
    assert report.exists(), f"schemathesis did not run; its output is in {output}"
    found = json.loads(report.read_text())
    failures = {f["code"]: (f["title"], f["operations"]) for f in found["failures"]}
    errors = [e["title"] for e in found["errors"]]
    assert (failures, errors) == ({}, []), f"every failure, reproducible with curl: {output}"
    assert found["test_cases"]["generated"] > 0
