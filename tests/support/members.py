"""Builders for member-registry tests: levels, members, connections, CSV files."""

from __future__ import annotations

from ledgerlink.identity.principal import cli_principal
from ledgerlink.members.registry import (
    MemberFields,
    build_level,
    build_member,
    create_level,
    create_member,
)
from ledgerlink.store.db import Database
from ledgerlink.store.models import Connection

HEADER = (
    "member_number,first_name,last_name,organisation,email,phone,account_type,"
    "membership_level,status,address_line1,address_line2,city,region,postal_code,country"
)


def add_levels(db: Database, *codes: str) -> None:
    with db.transaction() as session:
        for code in codes or ("standard", "gold"):
            fee = "250.00" if code == "gold" else "120.00"
            create_level(session, cli_principal(), build_level(code, code.title(), fee, "USD"))


def add_member(db: Database, number: str, first: str, last: str, **extra: str) -> None:
    fields = MemberFields(
        member_number=number,
        first_name=first,
        last_name=last,
        membership_level=extra.pop("membership_level", "standard"),
        **extra,
    )
    with db.transaction() as session:
        create_member(session, cli_principal(), build_member(fields))


def add_connection(db: Database, name: str = "SBC", kind: str = "sbc") -> int:
    with db.transaction() as session:
        connection = Connection(kind=kind, name=name, settings={}, is_active=True)
        session.add(connection)
        session.flush()
        return connection.id


def csv_bytes(*rows: str) -> bytes:
    return ("\n".join([HEADER, *rows]) + "\n").encode()
