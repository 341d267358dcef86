"""Creating, reading, changing and removing members and membership levels.

Every write happens in the caller's session (one unit of work) and appends an audit entry
with the before and after state. Input arrives as :class:`MemberFields` (text as typed,
from a form, the API or a CSV row); :func:`build_member` turns it into a normalised
:class:`Member` or one :class:`MemberInvalid` listing *every* problem, so a user fixes a
record in one pass rather than one error at a time.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any, TypedDict

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ledgerlink.domain.accounts import Address
from ledgerlink.domain.members import (
    AccountType,
    FieldProblem,
    Member,
    MemberInvalid,
    MembershipLevel,
    MemberStatus,
    card_number_problems,
    clean_text,
    normalise_level_code,
    normalise_member_number,
    parse_enum,
    search_key,
)
from ledgerlink.domain.money import Money, MoneyError
from ledgerlink.identity.principal import Principal
from ledgerlink.members.normalise import (
    DEFAULT_PHONE_REGION,
    RawAddress,
    email_key,
    normalise_address,
    normalise_email,
    normalise_phone,
    phone_digits,
)
from ledgerlink.store import audit
from ledgerlink.store.member_models import MemberLinkRow, MemberRow, MembershipLevelRow
from ledgerlink.store.types import utcnow
from ledgerlink.sync import realtime_outbox


class MemberNotFound(LookupError):
    """No member or level with that number/code; the message says which."""


class RegistryConflict(ValueError):
    """The change would break the registry (a second member with the same number, deleting
    a level still in use...); the message says what to do instead."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True, slots=True)
class MemberFields:
    """A member as typed: every field text, nothing normalised yet."""

    member_number: str = ""
    first_name: str = ""
    last_name: str = ""
    organisation: str = ""
    email: str = ""
    phone: str = ""
    account_type: str = ""
    membership_level: str = ""
    status: str = ""
    address_line1: str = ""
    address_line2: str = ""
    city: str = ""
    region: str = ""
    postal_code: str = ""
    country: str = ""

    @classmethod
    def names(cls) -> list[str]:
        return [f.name for f in fields(cls)]

    @classmethod
    def from_mapping(cls, data: Mapping[str, object]) -> MemberFields:
        known = set(cls.names())
        return cls(**{k: "" if v is None else str(v) for k, v in data.items() if k in known})


def build_member(raw: MemberFields, *, phone_region: str = DEFAULT_PHONE_REGION) -> Member:
    """Validate and normalise ``raw``; raise :class:`MemberInvalid` with every problem.

    The level is only checked for form here; whether it exists is the registry's call
    (:func:`level_id_for`), because that needs the database.
    """
    cards = card_number_problems(asdict(raw))
    if cards:  # checked first, alone: no other message may repeat the number
        raise MemberInvalid(cards)
    problems: list[FieldProblem] = []

    def attempt(step: Any, *args: Any) -> Any:
        try:
            return step(*args)
        except MemberInvalid as exc:
            problems.extend(exc.problems)
            return None

    number = attempt(normalise_member_number, raw.member_number)
    level = attempt(normalise_level_code, raw.membership_level)
    account_type = attempt(
        parse_enum, AccountType, raw.account_type, "account_type", AccountType.PERSONAL
    )
    status = attempt(parse_enum, MemberStatus, raw.status, "status", MemberStatus.ACTIVE)
    email = attempt(normalise_email, raw.email)
    phone = attempt(normalise_phone, raw.phone, phone_region)
    address = attempt(
        normalise_address,
        RawAddress(
            raw.address_line1, raw.address_line2, raw.city, raw.region, raw.postal_code, raw.country
        ),
    )
    member = Member(
        number=number or "",
        account_type=account_type or AccountType.PERSONAL,
        level_code=level or "",
        status=status or MemberStatus.ACTIVE,
        first_name=clean_text(raw.first_name),
        last_name=clean_text(raw.last_name),
        organisation=clean_text(raw.organisation),
        email=email or "",
        phone=phone or "",
        address=address or Address(),
    )
    if account_type is not None:
        problems.extend(member.problems())
    if problems:
        raise MemberInvalid(problems)
    return member


def member_fields(member: Member) -> MemberFields:
    """The normalised member as text fields (for export and for forms)."""
    a = member.address
    return MemberFields(
        member_number=member.number,
        first_name=member.first_name,
        last_name=member.last_name,
        organisation=member.organisation,
        email=member.email,
        phone=member.phone,
        account_type=member.account_type.value,
        membership_level=member.level_code,
        status=member.status.value,
        address_line1=a.line1,
        address_line2=a.line2,
        city=a.city,
        region=a.region,
        postal_code=a.postal_code,
        country=a.country,
    )


def content_hash(member: Member) -> str:
    """A fingerprint of everything stored about the member: equal hashes mean an import
    row would change nothing."""
    doc = asdict(member_fields(member))
    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()


def row_values(member: Member, level_id: int) -> dict[str, object]:
    """Column values for ``members`` (stored and search columns alike), as an insert takes
    them: text columns and the level's id."""
    a = member.address
    first, last, org = (
        search_key(member.first_name),
        search_key(member.last_name),
        search_key(member.organisation),
    )
    sort = (
        org
        if member.account_type is AccountType.CORPORATE and org
        else clean_text(f"{last} {first}")
    )
    return {
        "number": member.number,
        "account_type": member.account_type.value,
        "status": member.status.value,
        "level_id": level_id,
        "first_name": member.first_name,
        "last_name": member.last_name,
        "organisation": member.organisation,
        "email": member.email,
        "phone": member.phone,
        "address_line1": a.line1,
        "address_line2": a.line2,
        "city": a.city,
        "region": a.region,
        "postal_code": a.postal_code,
        "country": a.country or "US",
        "first_key": first,
        "last_key": last,
        "org_key": org,
        "sort_key": sort[:210],
        "email_key": email_key(member.email),
        "phone_rev": phone_digits(member.phone)[::-1],
        "content_hash": content_hash(member),
    }


def member_from_row(row: MemberRow, level_code: str) -> Member:
    return Member(
        number=row.number,
        account_type=AccountType(row.account_type),
        level_code=level_code,
        status=MemberStatus(row.status),
        first_name=row.first_name,
        last_name=row.last_name,
        organisation=row.organisation,
        email=row.email,
        phone=row.phone,
        address=Address(
            row.address_line1,
            row.address_line2,
            row.city,
            row.region,
            row.postal_code,
            row.country,
        ),
    )


def snapshot(member: Member) -> dict[str, object]:
    """What the audit chain records about a member (its fields as text)."""
    return asdict(member_fields(member))


# ---- levels --------------------------------------------------------------------------------


def level_from_row(row: MembershipLevelRow) -> MembershipLevel:
    return MembershipLevel(
        code=row.code,
        name=row.name,
        annual_fee=Money(row.annual_fee_minor, row.currency),
        description=row.description,
        is_active=row.is_active,
    )


def build_level(
    code: str, name: str, annual_fee: str, currency: str, description: str = ""
) -> MembershipLevel:
    """A level from typed values; the fee is a decimal string (``"120.00"``), never a float."""
    problems: list[FieldProblem] = []
    try:
        slug = normalise_level_code(code)
    except MemberInvalid as exc:
        problems.extend(FieldProblem("code", p.reason, p.fix) for p in exc.problems)
        slug = "invalid"
    try:
        fee = Money.parse(annual_fee, currency)
    except MoneyError as exc:
        problems.append(FieldProblem("annual_fee", str(exc), "give it like 120.00 with a currency"))
        fee = Money.zero("USD")
    try:
        level = MembershipLevel(slug, clean_text(name), fee, clean_text(description))
    except MemberInvalid as exc:
        problems.extend(exc.problems)
        level = None
    if problems or level is None:
        raise MemberInvalid(problems)
    return level


class LevelSnapshot(TypedDict):
    """A level as the audit chain records it and the API shows it (the fee as text)."""

    code: str
    name: str
    description: str
    annual_fee: str
    currency: str
    is_active: bool


def level_snapshot(level: MembershipLevel) -> LevelSnapshot:
    return {
        "code": level.code,
        "name": level.name,
        "description": level.description,
        "annual_fee": level.annual_fee.format_plain(),
        "currency": level.annual_fee.currency,
        "is_active": level.is_active,
    }


def list_levels(session: Session) -> list[MembershipLevelRow]:
    return list(session.scalars(select(MembershipLevelRow).order_by(MembershipLevelRow.code)))


def levels_by_code(session: Session) -> dict[str, MembershipLevelRow]:
    return {row.code: row for row in list_levels(session)}


def get_level(session: Session, code: str) -> MembershipLevelRow:
    row = session.scalar(select(MembershipLevelRow).where(MembershipLevelRow.code == code))
    if row is None:
        raise MemberNotFound(f"membership level {code!r} does not exist")
    return row


def create_level(
    session: Session, principal: Principal, level: MembershipLevel
) -> MembershipLevelRow:
    if session.scalar(select(MembershipLevelRow.id).where(MembershipLevelRow.code == level.code)):
        raise RegistryConflict(
            "code", f"membership level {level.code!r} already exists; edit it instead"
        )
    row = MembershipLevelRow(
        code=level.code,
        name=level.name,
        description=level.description,
        annual_fee_minor=level.annual_fee.minor,
        currency=level.annual_fee.currency,
        is_active=level.is_active,
    )
    session.add(row)
    session.flush()
    audit.record(
        session,
        actor=principal.actor,
        action="membership_level.created",
        entity_type="membership_level",
        entity_id=level.code,
        after=level_snapshot(level),
    )
    return row


def update_level(
    session: Session, principal: Principal, code: str, level: MembershipLevel
) -> MembershipLevelRow:
    row = get_level(session, code)
    before = level_snapshot(level_from_row(row))
    if level.code != code:
        raise RegistryConflict("code", "a level's code cannot change; create a new level")
    row.name, row.description = level.name, level.description
    row.annual_fee_minor, row.currency = level.annual_fee.minor, level.annual_fee.currency
    row.is_active = level.is_active
    after = level_snapshot(level)
    if after != before:
        row.updated_at = utcnow()
        audit.record(
            session,
            actor=principal.actor,
            action="membership_level.updated",
            entity_type="membership_level",
            entity_id=code,
            before=before,
            after=after,
        )
    return row


def delete_level(session: Session, principal: Principal, code: str) -> None:
    row = get_level(session, code)
    used = session.scalar(select(func.count()).where(MemberRow.level_id == row.id)) or 0
    if used:
        raise RegistryConflict(
            "code",
            f"membership level {code!r} is held by {used} member(s); move them to another "
            "level first, or mark the level inactive",
        )
    before = level_snapshot(level_from_row(row))
    session.delete(row)
    audit.record(
        session,
        actor=principal.actor,
        action="membership_level.deleted",
        entity_type="membership_level",
        entity_id=code,
        before=before,
    )


def level_id_for(levels: dict[str, MembershipLevelRow], code: str) -> int:
    row = levels.get(code)
    if row is None:
        known = ", ".join(sorted(levels)) or "none yet: create one first"
        raise MemberInvalid(
            [
                FieldProblem(
                    "membership_level",
                    f"{code!r} is not a membership level",
                    f"use one of: {known}",
                )
            ]
        )
    return row.id


# ---- members -------------------------------------------------------------------------------


def get_member(session: Session, number: str) -> MemberRow:
    try:
        key = normalise_member_number(number)
    except MemberInvalid as exc:
        raise MemberNotFound(str(exc)) from None
    row = session.scalar(select(MemberRow).where(MemberRow.number == key))
    if row is None:
        raise MemberNotFound(f"member {key} does not exist")
    return row


def load_member(session: Session, row: MemberRow) -> Member:
    level = session.get(MembershipLevelRow, row.level_id)
    return member_from_row(row, level.code if level else "")


def create_member(session: Session, principal: Principal, member: Member) -> MemberRow:
    levels = levels_by_code(session)
    values = row_values(member, level_id_for(levels, member.level_code))
    if session.scalar(select(MemberRow.id).where(MemberRow.number == member.number)):
        raise RegistryConflict(
            "member_number", f"member {member.number} already exists; edit that member instead"
        )
    row = MemberRow(**values)
    session.add(row)
    session.flush()
    realtime_outbox.member_changed(session, [row.id])
    audit.record(
        session,
        actor=principal.actor,
        action="member.created",
        entity_type="member",
        entity_id=member.number,
        after=snapshot(member),
    )
    return row


def update_member(
    session: Session,
    principal: Principal,
    number: str,
    member: Member,
    *,
    read_from_connection: int | None = None,
) -> bool:
    """Store ``member`` over the member ``number``; False (and no audit entry) when
    nothing changed. ``read_from_connection``: the change was read from that ledger (a
    sync), which therefore already holds it and is not written back in real time."""
    row = get_member(session, number)
    if member.number != row.number:
        raise RegistryConflict(
            "member_number", "a member number cannot change; create a new member instead"
        )
    values = row_values(member, level_id_for(levels_by_code(session), member.level_code))
    if values["content_hash"] == row.content_hash:
        return False
    before = snapshot(load_member(session, row))
    for key, value in values.items():
        setattr(row, key, value)
    row.updated_at = utcnow()
    realtime_outbox.member_changed(session, [row.id], read_from=read_from_connection)
    audit.record(
        session,
        actor=principal.actor,
        action="member.updated",
        entity_type="member",
        entity_id=member.number,
        before=before,
        # what is stored (defaults applied, e.g. country), read back as ``before`` was
        after=snapshot(load_member(session, row)),
    )
    return True


def delete_member(session: Session, principal: Principal, number: str) -> None:
    """Remove a member who was never linked to a customer. Linked members keep their
    history for the audit trail: set their status to terminated instead."""
    row = get_member(session, number)
    if session.scalar(select(MemberLinkRow.id).where(MemberLinkRow.member_id == row.id).limit(1)):
        raise RegistryConflict(
            "member_number",
            f"member {row.number} has customer-account links; set the status to terminated "
            "instead of deleting, so the link history stays",
        )
    before = snapshot(load_member(session, row))
    realtime_outbox.member_changed(session, [row.id])
    session.delete(row)
    audit.record(
        session,
        actor=principal.actor,
        action="member.deleted",
        entity_type="member",
        entity_id=row.number,
        before=before,
    )
