"""The web layer's seams: a write session commits before the answer leaves, a refusal
raised inside one is rolled back and answered by the one handler for its kind, and every
domain error kind has that handler."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import text
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ledgerlink.members.registry import RegistryConflict
from ledgerlink.store.db import Database
from ledgerlink.web.deps import WriteSession
from ledgerlink.web.domain_problems import handled_types


class RowsWhenAnswered:
    """Counts the probe table's rows, from another session, as the answer starts."""

    def __init__(self, app: ASGIApp, db: Database, seen: list[int]) -> None:
        self.app, self.db, self.seen = app, db, seen

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def watched(message: Message) -> None:
            if message["type"] == "http.response.start" and scope["path"].startswith(
                "/api/v1/probe"
            ):
                with self.db.read() as session:
                    self.seen.append(
                        session.execute(text("SELECT count(*) FROM probe")).scalar_one()
                    )
            await send(message)

        await self.app(scope, receive, watched)


@pytest.fixture
def probed(app: FastAPI, db: Database) -> tuple[TestClient, list[int]]:
    with db.transaction() as session:
        session.execute(text("CREATE TABLE probe (n INTEGER)"))

    def add(session: WriteSession) -> dict[str, Any]:
        session.execute(text("INSERT INTO probe (n) VALUES (1)"))
        return {"added": 1}

    def add_then_refuse(session: WriteSession) -> None:
        session.execute(text("INSERT INTO probe (n) VALUES (2)"))
        raise RegistryConflict("member_number", "member M1 exists already; change that one")

    app.router.add_api_route("/api/v1/probe/add", add, methods=["GET"])
    app.router.add_api_route("/api/v1/probe/refuse", add_then_refuse, methods=["GET"])
    seen: list[int] = []
    app.add_middleware(RowsWhenAnswered, db=db, seen=seen)
    with TestClient(app, base_url="http://127.0.0.1") as client:
        yield client, seen


def test_a_write_session_commits_before_the_answer_is_sent(probed) -> None:  # type: ignore[no-untyped-def]
    client, seen = probed
    response = client.get("/api/v1/probe/add")
    assert response.status_code == 200
    assert seen == [1], "the change was not committed when the answer started"


def test_a_refusal_in_a_write_session_is_rolled_back_and_answered_as_a_problem(probed) -> None:  # type: ignore[no-untyped-def]
    client, seen = probed
    response = client.get("/api/v1/probe/refuse")
    assert response.status_code == 409
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["errors"] == [
        {"field": "member_number", "message": "member M1 exists already; change that one"}
    ]
    assert seen == [0]


def test_every_domain_error_kind_has_its_handler(app: FastAPI) -> None:
    missing = [t.__name__ for t in handled_types() if t not in app.exception_handlers]
    assert missing == []
