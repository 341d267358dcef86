"""Members of the organisation, their membership levels, and the rules a member must meet.

A member is who the organisation bills; a customer account (``domain.accounts``) is how a
ledger knows them. This module holds only the pure rules, so the CSV import, the REST API
and the portal all refuse the same things with the same words: every problem is a
:class:`FieldProblem` naming the field, what is wrong, and how to fix it.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Final, TypeVar

from ledgerlink.domain.accounts import Address
from ledgerlink.domain.card_numbers import contains_card_number
from ledgerlink.domain.money import Money


class AccountType(StrEnum):
    PERSONAL = "personal"
    CORPORATE = "corporate"


class MemberStatus(StrEnum):
    PENDING = "pending"
    ACTIVE = "active"
    SUSPENDED = "suspended"
    TERMINATED = "terminated"
    EXPIRED = "expired"


@dataclass(frozen=True, slots=True)
class FieldProblem:
    """One thing wrong with one field of one record, said so a person can fix it."""

    field: str
    reason: str
    fix: str = ""

    @property
    def message(self) -> str:
        return f"{self.reason}; {self.fix}" if self.fix else self.reason

    def as_dict(self) -> dict[str, str]:
        return {"field": self.field, "message": self.message}


class MemberInvalid(ValueError):
    """A member (or level) that breaks the rules; ``problems`` lists every field at fault."""

    def __init__(self, problems: list[FieldProblem]) -> None:
        self.problems = problems
        super().__init__("; ".join(f"{p.field}: {p.message}" for p in problems))


MEMBER_NUMBER_MAX: Final = 20
LEVEL_CODE_MAX: Final = 32
NAME_MAX: Final = 100
_MEMBER_NUMBER: Final = re.compile(r"^[A-Z0-9][A-Z0-9._-]*$")
_LEVEL_CODE: Final = re.compile(r"^[a-z0-9][a-z0-9_-]*$")
_SPACES: Final = re.compile(r"\s+")

E = TypeVar("E", bound=StrEnum)


def clean_text(value: str | None) -> str:
    """Trimmed with inner whitespace collapsed: what users meant, whatever they typed."""
    return _SPACES.sub(" ", value or "").strip()


def normalise_member_number(value: str | None) -> str:
    """Member numbers are compared upper-case without spaces (``" m00042 "`` → ``M00042``),
    because people type them by hand and a case difference must never make two members."""
    text = _SPACES.sub("", value or "").upper()
    if not text:
        raise MemberInvalid(
            [FieldProblem("member_number", "is empty", "give the member number, e.g. M00042")]
        )
    if len(text) > MEMBER_NUMBER_MAX or not _MEMBER_NUMBER.match(text):
        raise MemberInvalid(
            [
                FieldProblem(
                    "member_number",
                    f"{value!r} is not a member number",
                    f"use up to {MEMBER_NUMBER_MAX} letters, digits, '.', '_' or '-', "
                    "starting with a letter or digit",
                )
            ]
        )
    return text


def normalise_level_code(value: str | None) -> str:
    """Level codes are lower-case slugs (``Gold`` → ``gold``) so files and forms agree."""
    text = _SPACES.sub("-", clean_text(value).lower())
    if not text:
        raise MemberInvalid(
            [FieldProblem("membership_level", "is empty", "give a membership level code")]
        )
    if len(text) > LEVEL_CODE_MAX or not _LEVEL_CODE.match(text):
        raise MemberInvalid(
            [
                FieldProblem(
                    "membership_level",
                    f"{value!r} is not a level code",
                    f"use up to {LEVEL_CODE_MAX} lower-case letters, digits, '-' or '_'",
                )
            ]
        )
    return text


def card_number_problems(values: Mapping[str, str]) -> list[FieldProblem]:
    """A problem for every field that holds what looks like a full card number, however
    its digit groups are separated: the registry never keeps card data. The message does
    not repeat the value, so the number goes no further (not into a response, not into a
    log line)."""
    return [
        FieldProblem(
            name,
            "holds what looks like a full card number",
            "remove it: ledgerlink never stores card numbers (keep at most the last four digits)",
        )
        for name, value in values.items()
        if value and contains_card_number(value)
    ]


def parse_enum(kind: type[E], value: str | None, field_name: str, default: E) -> E:
    """``value`` as one of ``kind``'s members (case-insensitive; empty means ``default``)."""
    text = clean_text(value).lower()
    if not text:
        return default
    try:
        return kind(text)
    except ValueError:
        allowed = ", ".join(m.value for m in kind)
        raise MemberInvalid(
            [FieldProblem(field_name, f"{value!r} is not allowed", f"use one of {allowed}")]
        ) from None


@dataclass(frozen=True, slots=True)
class MembershipLevel:
    """A tier of membership and what it costs a year."""

    code: str
    name: str
    annual_fee: Money
    description: str = ""
    is_active: bool = True

    def __post_init__(self) -> None:
        problems: list[FieldProblem] = []
        if not _LEVEL_CODE.match(self.code) or len(self.code) > LEVEL_CODE_MAX:
            problems.append(
                FieldProblem(
                    "code",
                    f"{self.code!r} is not a level code",
                    f"use up to {LEVEL_CODE_MAX} lower-case letters, digits, '-' or '_'",
                )
            )
        if not clean_text(self.name) or len(self.name) > NAME_MAX:
            problems.append(
                FieldProblem("name", "is empty or too long", f"give 1 to {NAME_MAX} characters")
            )
        if self.annual_fee.is_negative:
            problems.append(
                FieldProblem("annual_fee", "is negative", "give zero or a positive amount")
            )
        problems += card_number_problems(
            {"code": self.code, "name": self.name, "description": self.description}
        )
        if problems:
            raise MemberInvalid(problems)


@dataclass(frozen=True, slots=True)
class Member:
    """A member as the registry keeps them (already normalised: see ``members.normalise``)."""

    number: str
    account_type: AccountType
    level_code: str
    status: MemberStatus = MemberStatus.ACTIVE
    first_name: str = ""
    last_name: str = ""
    organisation: str = ""
    email: str = ""
    phone: str = ""  # E.164
    address: Address = field(default_factory=Address)

    @property
    def display_name(self) -> str:
        """The name a ledger customer gets: the organisation for corporate members, else
        "First Last"."""
        if self.account_type is AccountType.CORPORATE and self.organisation:
            return self.organisation
        return clean_text(f"{self.first_name} {self.last_name}") or self.organisation

    def problems(self) -> list[FieldProblem]:
        """Every rule this member breaks (empty when valid)."""
        found: list[FieldProblem] = []
        if self.account_type is AccountType.PERSONAL:
            if not self.first_name:
                found.append(
                    FieldProblem(
                        "first_name",
                        "is empty",
                        "personal members need a first and last name",
                    )
                )
            if not self.last_name:
                found.append(
                    FieldProblem(
                        "last_name",
                        "is empty",
                        "personal members need a first and last name",
                    )
                )
        elif not self.organisation:
            found.append(
                FieldProblem(
                    "organisation",
                    "is empty",
                    "corporate members need the organisation's name (or use account type personal)",
                )
            )
        for name, value in (
            ("first_name", self.first_name),
            ("last_name", self.last_name),
            ("organisation", self.organisation),
        ):
            if len(value) > NAME_MAX:
                found.append(
                    FieldProblem(name, f"is longer than {NAME_MAX} characters", "shorten it")
                )
        return found

    def validate(self) -> Member:
        found = self.problems()
        if found:
            raise MemberInvalid(found)
        return self


def search_key(text: str) -> str:
    """The form names and e-mails are searched in: lower-case, accents removed, spaces
    collapsed (``"  Zoë  O'Brien"`` → ``"zoe o'brien"``), so "zoe" finds "Zoë"."""
    decomposed = unicodedata.normalize("NFKD", text)
    stripped = "".join(c for c in decomposed if not unicodedata.combining(c))
    return clean_text(stripped).casefold()


def prefix_upper_bound(prefix: str) -> str:
    """The smallest string greater than every string starting with ``prefix`` (for a
    ``key >= prefix AND key < bound`` range that a plain btree index answers)."""
    return prefix + "\U0010ffff"


def member_link_idempotency_key(member_number: str, connection_id: int) -> str:
    """The key every create-customer call for this member and connection carries, so a
    retry after a crash finds the customer made the first time instead of a second one."""
    return f"member-link:{member_number}:{connection_id}"
