"""Create-and-link against the SBC simulator over a real socket, through the real OAuth path.

The behaviour pinned down is the fake-ledger one of ``test_members_linking.py`` (one contact
per member with the member number as reference, idempotent retries, likely duplicates
offered instead of created), now with Sage's own rules in the loop: unique references,
idempotency ids, the paging envelope and rotating refresh tokens.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from ledgerlink.cli import app
from ledgerlink.connectors.factory import ledger_for
from ledgerlink.identity.principal import cli_principal
from ledgerlink.mapping.loader import packaged_text
from ledgerlink.members import linking
from ledgerlink.runtime import Runtime
from ledgerlink.sandbox.sbc import SbcConfig
from ledgerlink.settings import Settings
from ledgerlink.store.mapping_repo import MappingRepository, mapping_repository
from ledgerlink.store.member_models import MemberLinkRow
from ledgerlink.store.migrate import upgrade
from ledgerlink.store.models import AuditEntry, Connection
from tests.support.members import add_levels, add_member
from tests.support.sbc import SbcClient, connect_ledgerlink, running_sbc

ME = cli_principal()


@pytest.fixture
def world(tmp_path: Path) -> Iterator[tuple[Runtime, int, SbcClient]]:
    settings = Settings(var_dir=tmp_path / "var", _env_file=None)  # type: ignore[call-arg]
    runtime = Runtime(settings)
    upgrade(runtime.db)
    add_levels(runtime.db)
    add_member(runtime.db, "M90001", "Jane", "Sandbox", email="jane.sandbox@example.org")
    add_member(runtime.db, "M90002", "Pat", "Duplicate", email="pat.dup@example.org")
    config = SbcConfig(auto_approve=True, rate_limit_per_minute=0, seed_people=30)
    with running_sbc(tmp_path / "sbc", config) as (base_url, used):
        connection_id = connect_ledgerlink(runtime, base_url)
        observer = SbcClient(base_url, used).connect()
        try:
            yield runtime, connection_id, observer
        finally:
            observer.close()
            runtime.db.dispose()


def _ledger(runtime: Runtime, connection_id: int):  # type: ignore[no-untyped-def]
    with runtime.db.read() as session:
        connection = session.get(Connection, connection_id)
        assert connection is not None
        return ledger_for(runtime, connection)


async def _create(runtime: Runtime, connection_id: int, number: str) -> linking.LinkOutcome:
    async with _ledger(runtime, connection_id) as ledger:
        return await linking.create_and_link(
            runtime.db, ME, ledger, number, connection_id, mappings=MappingRepository(None)
        )


def test_create_account_makes_one_sbc_contact_with_the_member_number_as_reference(world) -> None:  # type: ignore[no-untyped-def]
    runtime, connection_id, sbc = world
    outcome = asyncio.run(_create(runtime, connection_id, "M90001"))
    assert outcome.action == "created"
    [contact] = sbc.ok("/contacts", search="M90001", attributes="all")["$items"]
    assert (contact["reference"], contact["name"], contact["email"]) == (
        "M90001",
        "Jane Sandbox",
        "jane.sandbox@example.org",
    )
    with runtime.db.read() as session:
        link = session.scalars(select(MemberLinkRow)).one()
        assert link.customer_id == contact["id"]


def test_a_retried_create_returns_the_same_contact(world) -> None:  # type: ignore[no-untyped-def]
    runtime, connection_id, sbc = world
    first = asyncio.run(_create(runtime, connection_id, "M90001"))
    again = asyncio.run(_create(runtime, connection_id, "M90001"))
    assert again.action == "already_linked"
    assert again.customer.id == first.customer.id
    assert len(sbc.ok("/contacts", search="M90001")["$items"]) == 1


def test_a_contact_already_holding_the_member_number_is_linked_not_duplicated(world) -> None:  # type: ignore[no-untyped-def]
    runtime, connection_id, sbc = world
    existing = sbc.created(
        "/contacts",
        "contact",
        {"name": "P. Duplicate", "contact_type_ids": ["CUSTOMER"], "reference": "M90002"},
    )
    outcome = asyncio.run(_create(runtime, connection_id, "M90002"))
    assert outcome.action == "linked_existing"
    assert outcome.customer.id == existing["id"]
    assert len(sbc.ok("/contacts", search="M90002")["$items"]) == 1


def test_linking_survives_an_expired_access_token(world) -> None:  # type: ignore[no-untyped-def]
    runtime, connection_id, sbc = world
    httpx.post(f"{sbc.base_url}/_sandbox/expire_tokens", json={})
    outcome = asyncio.run(_create(runtime, connection_id, "M90001"))
    assert outcome.action == "created"


def test_the_contact_is_made_the_way_the_member_to_contact_spec_says(world) -> None:  # type: ignore[no-untyped-def]
    """Finance edits the member → SBC contact spec (names in capitals, a fixed e-mail for
    accounts): the next contact created is made that way, the reference stays the member
    number; a spec that cannot map the name refuses to create, saying which spec and field."""
    runtime, connection_id, sbc = world
    shipped = packaged_text("member_to_sbc_contact")
    assert shipped is not None
    rule = "expr: if(source.account_type == 'corporate', clean(source.company_name), vars.person)"
    edited = shipped.replace(rule, rule.replace("expr: if(", "expr: upper(if(") + ")")
    with runtime.db.transaction() as session:
        MappingRepository(None).save(session, ME, "member_to_sbc_contact", edited, "capitals")
    asyncio.run(_create(runtime, connection_id, "M90001"))
    [contact] = sbc.ok("/contacts", search="M90001", attributes="all")["$items"]
    assert (contact["reference"], contact["name"]) == ("M90001", "JANE SANDBOX")
    with runtime.db.read() as session:
        linked = session.scalars(
            select(AuditEntry).where(AuditEntry.action == "member.linked")
        ).one()
        assert linked.after["mapping_version"] == "member_to_sbc_contact@v1"

    broken = shipped.replace(rule, "expr: number(source.first_name)")
    with runtime.db.transaction() as session:
        MappingRepository(None).save(session, ME, "member_to_sbc_contact", broken, "oops")
    with pytest.raises(linking.LinkFailed) as refused:
        asyncio.run(_create(runtime, connection_id, "M90002"))
    assert "member_to_sbc_contact@v2" in str(refused.value)
    assert "name" in str(refused.value)
    assert sbc.ok("/contacts", search="M90002", attributes="all")["$items"] == []


def test_a_spec_in_the_configuration_directory_makes_the_contact(world) -> None:  # type: ignore[no-untyped-def]
    runtime, connection_id, sbc = world
    shipped = packaged_text("member_to_sbc_contact")
    assert shipped is not None
    rule = "expr: if(source.account_type == 'corporate', clean(source.company_name), vars.person)"
    folder = runtime.settings.var_dir / "mappings"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "member_to_sbc_contact.yaml").write_text(
        shipped.replace(rule, rule.replace("expr: if(", "expr: upper(if(") + ")")
    )

    async def create() -> linking.LinkOutcome:
        async with _ledger(runtime, connection_id) as ledger:
            return await linking.create_and_link(
                runtime.db,
                ME,
                ledger,
                "M90001",
                connection_id,
                mappings=mapping_repository(runtime.settings),
            )

    asyncio.run(create())
    [contact] = sbc.ok("/contacts", search="M90001", attributes="all")["$items"]
    assert contact["name"] == "JANE SANDBOX"
    with runtime.db.read() as session:
        linked = session.scalars(
            select(AuditEntry).where(AuditEntry.action == "member.linked")
        ).one()
    assert linked.after["mapping_version"].startswith("member_to_sbc_contact@config:")


def test_bulk_create_and_link_from_the_cli_uses_the_configuration_directorys_spec(
    world, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    """`ledgerlink link bulk` once built its customers through the shipped spec, whatever
    the installation's configuration directory said (the portal and the API did not)."""
    runtime, _connection_id, sbc = world
    shipped = packaged_text("member_to_sbc_contact")
    assert shipped is not None
    rule = "expr: if(source.account_type == 'corporate', clean(source.company_name), vars.person)"
    folder = runtime.settings.var_dir / "mappings"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "member_to_sbc_contact.yaml").write_text(
        shipped.replace(rule, rule.replace("expr: if(", "expr: upper(if(") + ")")
    )
    monkeypatch.setenv("LEDGERLINK_VAR_DIR", str(runtime.settings.var_dir))
    monkeypatch.setenv("LEDGERLINK_LOG_FORMAT", "console")

    result = CliRunner().invoke(app, ["link", "bulk", "--member", "M90001"])

    assert result.exit_code == 0, result.output
    [contact] = sbc.ok("/contacts", search="M90001", attributes="all")["$items"]
    assert contact["name"] == "JANE SANDBOX"
