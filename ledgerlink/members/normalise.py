"""Contact details in one canonical form: e-mail, phone as E.164, billing address.

One form per value is what makes a re-import a no-op (the same person typed two ways is
stored one way), duplicate detection reliable (emails compare exactly) and the ledgers
consistent. Every failure is a :class:`FieldProblem` saying what is wrong and what to
type instead. All functions are idempotent: normalising a normalised value returns it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Final

import phonenumbers
import pycountry
from email_validator import EmailNotValidError, validate_email

from ledgerlink.domain.accounts import Address
from ledgerlink.domain.members import FieldProblem, MemberInvalid, clean_text

#: Phone numbers written without a country code are read as numbers of this region.
DEFAULT_PHONE_REGION: Final = "US"
DEFAULT_COUNTRY: Final = "US"

_COUNTRY_ALIASES: Final[dict[str, str]] = {
    "UK": "GB",
    "GREAT BRITAIN": "GB",
    "ENGLAND": "GB",
    "SCOTLAND": "GB",
    "WALES": "GB",
    "USA": "US",
    "U.S.": "US",
    "U.S.A.": "US",
    "UNITED STATES OF AMERICA": "US",
}
_ZIP: Final = re.compile(r"^\d{5}(?:-\d{4})?$")
_NON_DIGITS: Final = re.compile(r"\D")


def _invalid(field: str, reason: str, fix: str) -> MemberInvalid:
    return MemberInvalid([FieldProblem(field, reason, fix)])


def normalise_email(value: str | None) -> str:
    """The address with its domain lower-cased (``Jane@Example.ORG`` → ``Jane@example.org``);
    empty stays empty. Deliverability is not checked: imports must not depend on DNS."""
    text = clean_text(value)
    if not text:
        return ""
    try:
        return str(validate_email(text, check_deliverability=False).normalized)
    except EmailNotValidError as exc:
        raise _invalid(
            "email",
            f"{text!r} is not an e-mail address ({exc})",
            "write it like name@example.org",
        ) from None


def email_key(email: str) -> str:
    """How e-mails are compared and searched: entirely lower-case (the local part is case
    sensitive in theory, never in practice)."""
    return email.casefold()


def normalise_phone(value: str | None, region: str = DEFAULT_PHONE_REGION) -> str:
    """E.164 (``(212) 555-0123`` → ``+12125550123``); numbers without ``+`` are read as
    ``region``'s. Empty stays empty."""
    text = clean_text(value)
    if not text:
        return ""
    try:
        parsed = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException:
        parsed = None
    if parsed is None or not phonenumbers.is_valid_number(parsed):
        raise _invalid(
            "phone",
            f"{text!r} is not a valid phone number",
            f"give the full number with area code; numbers outside {region} need their "
            "country code, e.g. +44 20 7946 0958",
        )
    return str(phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164))


def phone_digits(e164: str) -> str:
    """The digits of a phone number, for searching (``+12125550123`` → ``12125550123``)."""
    return _NON_DIGITS.sub("", e164)


@lru_cache(maxsize=512)
def country_code(value: str) -> str:
    """ISO 3166-1 alpha-2 from a code or an English name (``usa`` → ``US``)."""
    text = clean_text(value)
    if not text:
        return DEFAULT_COUNTRY
    key = _COUNTRY_ALIASES.get(text.upper(), text)
    try:
        return str(pycountry.countries.lookup(key).alpha_2)
    except LookupError:
        raise _invalid(
            "country",
            f"{text!r} is not a country ISO 3166 knows",
            "use a two-letter code such as US, GB or DE",
        ) from None


@lru_cache(maxsize=1)
def _us_subdivisions() -> dict[str, str]:
    """US state and territory names (upper-case) by two-letter code."""
    registry: Any = pycountry.subdivisions
    return {
        str(s.code).split("-", 1)[1]: str(s.name).upper()
        for s in registry.get(country_code="US") or []
    }


@lru_cache(maxsize=128)
def _us_state(value: str) -> str:
    text = clean_text(value).upper()
    states = _us_subdivisions()
    if text in states:
        return text
    for code, name in states.items():
        if name == text:
            return code
    raise _invalid(
        "region",
        f"{value!r} is not a US state",
        "use the two-letter postal code, e.g. NY or CA",
    )


@dataclass(frozen=True, slots=True)
class RawAddress:
    line1: str = ""
    line2: str = ""
    city: str = ""
    region: str = ""
    postal_code: str = ""
    country: str = ""

    @property
    def is_empty(self) -> bool:
        return not any(
            clean_text(v)
            for v in (self.line1, self.line2, self.city, self.region, self.postal_code)
        )


def normalise_address(raw: RawAddress) -> Address:
    """The billing address in normal form.

    US addresses are put in USPS style by usaddress-scourgify (``123 main street apt 4`` →
    ``123 MAIN ST`` / ``APT 4``) after checking they have a street, city, state and ZIP;
    forms scourgify cannot parse (PO boxes, rural routes) are kept, upper-cased, rather
    than refused. Other countries are trimmed and keep their own conventions. An address
    with no lines at all is the empty address (members may have none yet).
    """
    if raw.is_empty:
        return Address()
    country = country_code(raw.country)
    line1, line2 = clean_text(raw.line1), clean_text(raw.line2)
    city, region, postal = clean_text(raw.city), clean_text(raw.region), clean_text(raw.postal_code)
    problems: list[FieldProblem] = []
    if not line1:
        problems.append(
            FieldProblem("address_line1", "is empty", "give the street address (first line)")
        )
    if not city:
        problems.append(FieldProblem("city", "is empty", "give the city or town"))
    if country != "US":
        if problems:
            raise MemberInvalid(problems)
        return Address(line1, line2, city, region, postal.upper(), country)

    try:
        state = _us_state(region) if region else ""
    except MemberInvalid as exc:
        problems.extend(exc.problems)
        state = ""
    if not region:
        problems.append(FieldProblem("region", "is empty", "give the two-letter state code"))
    if not _ZIP.match(postal):
        problems.append(
            FieldProblem(
                "postal_code",
                f"{postal!r} is not a US ZIP code" if postal else "is empty",
                "give five digits, or ZIP+4 as 12345-6789",
            )
        )
    if problems:
        raise MemberInvalid(problems)
    return _usps(line1, line2, city, state, postal)


@lru_cache(maxsize=4096)
def _usps(line1: str, line2: str, city: str, state: str, postal: str) -> Address:
    from scourgify import normalize_address_record
    from scourgify.exceptions import AddressNormalizationError

    try:
        found = normalize_address_record(
            {
                "address_line_1": line1,
                "address_line_2": line2 or None,
                "city": city,
                "state": state,
                "postal_code": postal,
            }
        )
    except (AddressNormalizationError, ValueError, KeyError, TypeError):
        return Address(line1.upper(), line2.upper(), city.upper(), state, postal, "US")
    return Address(
        str(found.get("address_line_1") or ""),
        str(found.get("address_line_2") or ""),
        str(found.get("city") or ""),
        str(found.get("state") or state),
        str(found.get("postal_code") or postal),
        "US",
    )
