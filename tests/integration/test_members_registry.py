"""The member registry in the database: CRUD, CSV import/export and search."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from ledgerlink.domain.members import MemberInvalid
from ledgerlink.identity.principal import cli_principal
from ledgerlink.members import csv_io
from ledgerlink.members.registry import (
    MemberFields,
    RegistryConflict,
    build_member,
    create_member,
    delete_level,
    delete_member,
    get_member,
    load_member,
    update_member,
)
from ledgerlink.members.search import MemberQuery, search
from ledgerlink.store.db import Database
from ledgerlink.store.member_models import MemberLinkRow, MemberRow
from ledgerlink.store.models import AuditEntry
from tests.support.members import add_connection, add_levels, add_member, csv_bytes

GOOD = [
    "M00001,Jane,Doe,,Jane.Doe@Example.ORG,(212) 555-0123,personal,standard,active,"
    "123 main street apt 4,,new york,ny,10001,US",
    "M00002,,,Acme Widgets Ltd,ap@acme.example.com,+44 20 7946 0958,corporate,gold,active,"
    "1 High Street,,London,,SW1A 1AA,GB",
    "m00003,Zoë,O'Brien,,zoe@example.org,,personal,standard,pending,,,,,,",
]


def audit_count(db: Database) -> int:
    with db.read() as session:
        return session.scalar(select(func.count()).select_from(AuditEntry)) or 0


def test_a_member_is_created_normalised_and_audited(db: Database) -> None:
    add_levels(db)
    before = audit_count(db)
    add_member(
        db,
        " m42 ",
        "Jane",
        "Doe",
        email="Jane@Example.ORG",
        phone="212-555-0123",
        address_line1="123 main street",
        city="new york",
        region="New York",
        postal_code="10001",
    )
    with db.read() as session:
        member = load_member(session, get_member(session, "M42"))
    assert member.number == "M42"
    assert member.email == "Jane@example.org"
    assert member.phone == "+12125550123"
    assert member.address.line1 == "123 MAIN ST"
    assert member.address.region == "NY"
    assert audit_count(db) == before + 1


def test_a_member_number_cannot_be_used_twice(db: Database) -> None:
    add_levels(db)
    add_member(db, "M1", "Jane", "Doe")
    with pytest.raises(RegistryConflict, match="already exists"):
        add_member(db, "m1", "John", "Doe")


def test_an_unknown_level_is_refused_naming_the_known_ones(db: Database) -> None:
    add_levels(db)
    with pytest.raises(MemberInvalid, match="use one of: gold, standard"):
        add_member(db, "M1", "Jane", "Doe", membership_level="platinum")


def test_updating_with_the_same_values_writes_nothing(db: Database) -> None:
    add_levels(db)
    add_member(db, "M1", "Jane", "Doe", email="jane@example.org")
    before = audit_count(db)
    same = build_member(
        MemberFields(
            member_number="M1",
            first_name="Jane",
            last_name="Doe",
            email="jane@example.org",
            membership_level="standard",
        )
    )
    with db.transaction() as session:
        assert update_member(session, cli_principal(), "M1", same) is False
    assert audit_count(db) == before
    changed = build_member(
        MemberFields(
            member_number="M1",
            first_name="Jane",
            last_name="Smith",
            membership_level="gold",
        )
    )
    with db.transaction() as session:
        assert update_member(session, cli_principal(), "M1", changed) is True
    assert audit_count(db) == before + 1


def test_a_level_in_use_cannot_be_deleted(db: Database) -> None:
    add_levels(db)
    add_member(db, "M1", "Jane", "Doe")
    with db.transaction() as session, pytest.raises(RegistryConflict, match="held by 1"):
        delete_level(session, cli_principal(), "standard")


def test_a_linked_member_cannot_be_deleted_only_terminated(db: Database) -> None:
    add_levels(db)
    add_member(db, "M1", "Jane", "Doe")
    connection_id = add_connection(db)
    with db.transaction() as session:
        member = get_member(session, "M1")
        session.add(
            MemberLinkRow(
                member_id=member.id,
                connection_id=connection_id,
                system="sbc",
                customer_id="c1",
                linked_by="test",
            )
        )
    with db.transaction() as session, pytest.raises(RegistryConflict, match="terminated"):
        delete_member(session, cli_principal(), "M1")


def test_csv_import_reports_each_bad_row_and_imports_the_good_ones(db: Database) -> None:
    add_levels(db)
    data = csv_bytes(
        *GOOD,
        "M00004,Bad,Email,,not-an-email,,personal,standard,active,,,,,,",
        "M00005,Bad,Phone,,,12345,personal,standard,active,,,,,,",
        "M00006,No,Level,,,,personal,platinum,active,,,,,,",
        "M00001,Jane,Again,,,,personal,standard,active,,,,,,",
        "M00007,Bad,Zip,,,,personal,standard,active,1 Main St,,Boston,MA,ABCDE,US",
        "M00008,,,,,,corporate,standard,active,,,,,,",
    )
    with db.transaction() as session:
        report = csv_io.import_csv(session, cli_principal(), data)
    assert (report.rows, report.created, report.updated, report.unchanged) == (9, 3, 0, 0)
    found = {(e.line, e.field) for e in report.errors}
    assert found == {
        (5, "email"),
        (6, "phone"),
        (7, "membership_level"),
        (8, "member_number"),
        (9, "postal_code"),
        (10, "organisation"),
    }
    duplicate = next(e for e in report.errors if e.line == 8)
    assert "already appears on line 2" in duplicate.reason
    with db.read() as session:
        assert session.scalar(select(func.count()).select_from(MemberRow)) == 3
        assert get_member(session, "M00003").first_name == "Zoë"


def test_reimporting_the_same_file_changes_nothing(db: Database) -> None:
    add_levels(db)
    data = csv_bytes(*GOOD)
    with db.transaction() as session:
        csv_io.import_csv(session, cli_principal(), data)
    before = audit_count(db)
    with db.read() as session:
        stamps = dict(session.execute(select(MemberRow.number, MemberRow.updated_at)).all())
    with db.transaction() as session:
        report = csv_io.import_csv(session, cli_principal(), data)
    assert (report.created, report.updated, report.unchanged) == (0, 0, 3)
    assert audit_count(db) == before
    with db.read() as session:
        assert dict(session.execute(select(MemberRow.number, MemberRow.updated_at)).all()) == stamps


def test_an_export_reimports_as_a_no_op(db: Database) -> None:
    add_levels(db)
    with db.transaction() as session:
        csv_io.import_csv(session, cli_principal(), csv_bytes(*GOOD))
    with db.read() as session:
        exported = "".join(csv_io.export_csv(session)).encode()
    with db.transaction() as session:
        report = csv_io.import_csv(session, cli_principal(), exported)
    assert report.errors == []
    assert (report.created, report.updated, report.unchanged) == (0, 0, 3)


def test_a_changed_row_is_updated_and_audited_with_before_and_after(db: Database) -> None:
    add_levels(db)
    with db.transaction() as session:
        csv_io.import_csv(session, cli_principal(), csv_bytes(*GOOD))
    changed = GOOD[0].replace(",standard,", ",gold,")
    with db.transaction() as session:
        report = csv_io.import_csv(session, cli_principal(), csv_bytes(changed, *GOOD[1:]))
    assert (report.created, report.updated, report.unchanged) == (0, 1, 2)
    with db.read() as session:
        entry = session.scalars(
            select(AuditEntry).where(AuditEntry.action == "member.updated")
        ).one()
    assert entry.before["membership_level"] == "standard"
    assert entry.after["membership_level"] == "gold"


def test_a_file_without_the_required_columns_is_refused_whole(db: Database) -> None:
    add_levels(db)
    with db.transaction() as session, pytest.raises(csv_io.FileRefused) as refused:
        csv_io.import_csv(session, cli_principal(), b"name,colour\nJane,blue\n")
    fields = {e.field for e in refused.value.errors}
    assert {"name", "colour", "member_number", "membership_level"} <= fields


def test_a_failure_while_writing_leaves_nothing_half_written(db: Database) -> None:
    add_levels(db)

    def import_then_fail() -> None:
        with db.transaction() as session:
            csv_io.import_csv(session, cli_principal(), csv_bytes(*GOOD))
            raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        import_then_fail()
    with db.read() as session:
        assert session.scalar(select(func.count()).select_from(MemberRow)) == 0


@pytest.fixture
def populated(db: Database) -> Database:
    add_levels(db)
    with db.transaction() as session:
        csv_io.import_csv(session, cli_principal(), csv_bytes(*GOOD))
        create_member(
            session,
            cli_principal(),
            build_member(
                MemberFields(
                    member_number="M00010",
                    first_name="Janet",
                    last_name="Smith",
                    email="janet@example.org",
                    phone="+1 415 555 0100",
                    membership_level="gold",
                )
            ),
        )
    return db


@pytest.mark.parametrize(
    ("q", "expected"),
    [
        ("jan", ["M00001", "M00010"]),
        ("doe", ["M00001"]),
        ("jane d", ["M00001"]),
        ("zoe", ["M00003"]),
        ("o'b", ["M00003"]),
        ("acme wid", ["M00002"]),
        ("JANE.DOE@example", ["M00001"]),
        ("555-0123", ["M00001"]),
        ("(415) 555-0100", ["M00010"]),
        ("m0000", ["M00002", "M00001", "M00003"]),
        ("nobody", []),
    ],
)
def test_search_by_name_email_phone_and_member_number(
    populated: Database, q: str, expected: list[str]
) -> None:
    with populated.read() as session:
        page = search(session, MemberQuery(q=q))
    assert sorted(h.number for h in page.items) == sorted(expected)
    assert page.total == len(expected)


def test_search_filters_by_level_type_status_and_missing_account(populated: Database) -> None:
    db = populated
    connection_id = add_connection(db)
    with db.transaction() as session:
        member = get_member(session, "M00001")
        session.add(
            MemberLinkRow(
                member_id=member.id,
                connection_id=connection_id,
                system="sbc",
                customer_id="c1",
                linked_by="test",
            )
        )

    def numbers(**filters: object) -> list[str]:
        with db.read() as session:
            return sorted(h.number for h in search(session, MemberQuery(**filters)).items)  # type: ignore[arg-type]

    assert numbers(level="gold") == ["M00002", "M00010"]
    assert numbers(account_type="corporate") == ["M00002"]
    assert numbers(status="pending") == ["M00003"]
    assert numbers(without_account=True) == ["M00002", "M00003", "M00010"]
    assert numbers(without_account=True, level="gold", q="jan") == ["M00010"]
    other = add_connection(db, "Sage 500", "sage500")
    assert "M00001" in numbers(without_account=True, connection_id=other)
