"""Linking members to customers, against an in-memory ledger implementing the Protocol."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import select

from ledgerlink.connectors.base import Ledger
from ledgerlink.identity.principal import cli_principal
from ledgerlink.members import linking
from ledgerlink.members.registry import get_member
from ledgerlink.store.db import Database
from ledgerlink.store.mapping_repo import MappingRepository
from ledgerlink.store.member_models import MemberLinkRow
from ledgerlink.store.models import AuditEntry
from tests.support.fake_ledger import FakeLedger
from tests.support.members import add_connection, add_levels, add_member

ME = cli_principal()


@pytest.fixture
def setup(db: Database) -> tuple[Database, FakeLedger, int]:
    add_levels(db)
    add_member(db, "M00001", "Jane", "Doe", email="jane@example.org")
    add_member(db, "M00002", "John", "Smith", email="john@example.org")
    return db, FakeLedger(), add_connection(db)


def test_the_fake_ledger_satisfies_the_protocol() -> None:
    assert isinstance(FakeLedger(), Ledger)


def test_create_account_creates_the_customer_with_the_member_number_and_links_it(setup) -> None:
    db, ledger, connection_id = setup
    outcome = asyncio.run(
        linking.create_and_link(
            db, ME, ledger, "M00001", connection_id, mappings=MappingRepository(None)
        )
    )
    assert outcome.action == "created"
    assert "Created Sage Business Cloud contact 'Jane Doe'" in outcome.message
    assert "linked it to member M00001" in outcome.message
    (customer,) = ledger.by_id.values()
    assert (customer.number, customer.name, customer.email) == (
        "M00001",
        "Jane Doe",
        "jane@example.org",
    )
    assert ledger.by_key == {f"member-link:M00001:{connection_id}": customer.id}
    with db.read() as session:
        link = session.scalars(select(MemberLinkRow)).one()
        assert (link.customer_id, link.created_customer, link.unlinked_at) == (
            customer.id,
            True,
            None,
        )
        assert session.scalars(select(AuditEntry).where(AuditEntry.action == "member.linked")).one()


def test_create_account_twice_creates_once(setup) -> None:
    db, ledger, connection_id = setup
    asyncio.run(
        linking.create_and_link(
            db, ME, ledger, "M00001", connection_id, mappings=MappingRepository(None)
        )
    )
    again = asyncio.run(
        linking.create_and_link(
            db, ME, ledger, "M00001", connection_id, mappings=MappingRepository(None)
        )
    )
    assert again.action == "already_linked"
    assert len(ledger.by_id) == 1


def test_a_customer_with_the_member_number_as_reference_is_linked_not_duplicated(setup) -> None:
    db, ledger, connection_id = setup
    existing = ledger.add("M00001", "J. Doe (old)")
    outcome = asyncio.run(
        linking.create_and_link(
            db, ME, ledger, "M00001", connection_id, mappings=MappingRepository(None)
        )
    )
    assert outcome.action == "linked_existing"
    assert outcome.customer.id == existing.id
    assert "instead of creating a duplicate" in outcome.message
    assert ledger.create_calls == 0


def test_a_likely_duplicate_is_offered_instead_of_created(setup) -> None:
    db, ledger, connection_id = setup
    by_email = ledger.add("C-77", "Someone Else", "JANE@example.org")
    by_name = ledger.add("C-78", "Doe, Jane")
    ledger.add("C-79", "Unrelated Person")
    with pytest.raises(linking.LikelyDuplicates) as offered:
        asyncio.run(
            linking.create_and_link(
                db, ME, ledger, "M00001", connection_id, mappings=MappingRepository(None)
            )
        )
    ids = [c.customer.id for c in offered.value.candidates]
    assert set(ids) == {by_email.id, by_name.id}
    reasons = {c.customer.id: c.reasons for c in offered.value.candidates}
    assert reasons[by_email.id] == ("same e-mail",)
    assert reasons[by_name.id][0].startswith("similar name")
    assert ledger.create_calls == 0

    forced = asyncio.run(
        linking.create_and_link(
            db, ME, ledger, "M00001", connection_id, force=True, mappings=MappingRepository(None)
        )
    )
    assert forced.action == "created"


def test_link_existing_then_relink_then_unlink_keeps_the_history(setup) -> None:
    db, ledger, connection_id = setup
    first = ledger.add("C-1", "Jane Doe")
    second = ledger.add("C-2", "Jane Doe-Smith")
    asyncio.run(linking.link_existing(db, ME, ledger, "M00001", connection_id, first.id))
    with pytest.raises(linking.LinkConflict, match="use relink"):
        asyncio.run(linking.link_existing(db, ME, ledger, "M00001", connection_id, second.id))
    relinked = asyncio.run(
        linking.link_existing(db, ME, ledger, "M00001", connection_id, second.id, relink=True)
    )
    assert relinked.action == "relinked"
    linking.unlink(db, ME, "M00001", connection_id, "member left")
    with db.read() as session:
        entries = linking.history(session, get_member(session, "M00001").id)
    assert [(e.customer_id, e.active) for e in entries] == [(second.id, False), (first.id, False)]
    assert entries[0].unlink_reason == "member left"
    assert entries[1].unlink_reason == f"relinked to {second.number}"


def test_one_customer_cannot_be_linked_to_two_members(setup) -> None:
    db, ledger, connection_id = setup
    customer = ledger.add("C-1", "Jane Doe")
    asyncio.run(linking.link_existing(db, ME, ledger, "M00001", connection_id, customer.id))
    with pytest.raises(linking.LinkConflict, match="already linked to member M00001"):
        asyncio.run(linking.link_existing(db, ME, ledger, "M00002", connection_id, customer.id))


def test_the_database_refuses_a_second_active_link_to_one_customer(setup) -> None:
    from sqlalchemy.exc import IntegrityError

    db, _ledger, connection_id = setup

    def link_both_to_one_customer() -> None:
        with db.transaction() as session:
            for number in ("M00001", "M00002"):
                session.add(
                    MemberLinkRow(
                        member_id=get_member(session, number).id,
                        connection_id=connection_id,
                        system="sbc",
                        customer_id="same",
                        linked_by="test",
                    )
                )
            session.flush()

    with pytest.raises(IntegrityError):
        link_both_to_one_customer()


def test_a_customer_linked_elsewhere_is_shown_as_such_among_candidates(setup) -> None:
    db, ledger, connection_id = setup
    customer = ledger.add("C-1", "John Smith", "john@example.org")
    asyncio.run(linking.link_existing(db, ME, ledger, "M00002", connection_id, customer.id))
    add_member(db, "M00003", "Jon", "Smith", email="john@example.org")
    found = asyncio.run(linking.find_candidates(db, ledger, "M00003", connection_id))
    assert [(c.customer.id, c.linked_to) for c in found] == [(customer.id, "M00002")]
    # a candidate someone else holds does not block creating
    outcome = asyncio.run(
        linking.create_and_link(
            db, ME, ledger, "M00003", connection_id, mappings=MappingRepository(None)
        )
    )
    assert outcome.action == "created"


def test_a_ledger_rejection_is_reported_with_the_field_and_nothing_is_linked(setup) -> None:
    db, ledger, connection_id = setup
    ledger.reject_names.add("Jane Doe")
    with pytest.raises(linking.LinkFailed) as failed:
        asyncio.run(
            linking.create_and_link(
                db, ME, ledger, "M00001", connection_id, mappings=MappingRepository(None)
            )
        )
    assert failed.value.field == "name"
    assert "name can't be blank" in failed.value.message
    with db.read() as session:
        assert session.scalars(select(MemberLinkRow)).all() == []


def test_a_paytrace_connection_is_not_a_ledger_and_says_why(setup) -> None:
    db, ledger, _ = setup
    paytrace = add_connection(db, "Cards", "paytrace")
    with pytest.raises(linking.LinkError, match="PayTrace customer profiles hold a card"):
        asyncio.run(
            linking.create_and_link(
                db, ME, ledger, "M00001", paytrace, mappings=MappingRepository(None)
            )
        )
