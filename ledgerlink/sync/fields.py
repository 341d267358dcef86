"""The synchronised fields as plain text on both sides, and writing them back.

The registry keeps a person's first and last name (or an organisation's name); a ledger
keeps one name. So the registry's side of ``name`` is its display name, and a name
coming from the ledger is split back: an organisation's name as is, a person's last word
as the last name. Everything else maps one to one. Values are compared as the registry
would store them (trimmed), so formatting alone never counts as a change.
"""

from __future__ import annotations

import contextlib
import hashlib
from dataclasses import replace
from typing import Any

from ledgerlink.domain.accounts import Address, CustomerAccount, CustomerDraft
from ledgerlink.domain.members import AccountType, Member, MemberInvalid
from ledgerlink.members.normalise import (
    RawAddress,
    normalise_address,
    normalise_email,
    normalise_phone,
)
from ledgerlink.sync.datasets import FIELDS
from ledgerlink.sync.merge import Values


def registry_values(member: Member) -> Values:
    return {
        "name": member.display_name,
        "email": member.email,
        "phone": member.phone,
        "address_line1": member.address.line1,
        "address_line2": member.address.line2,
        "city": member.address.city,
        "region": member.address.region,
        "postal_code": member.address.postal_code,
        "country": member.address.country,
    }


def _as_registry_would(normalise: Any, raw: str, *args: Any) -> str:
    """The registry's form of a ledger value; as typed when the registry would refuse it
    (the refusal is reported when the value is written to the registry)."""
    try:
        return str(normalise(raw, *args))
    except MemberInvalid:
        return raw


def ledger_values(customer: CustomerAccount) -> Values:
    """The customer's fields as the registry would store them (e-mail, E.164 phone, a US
    address in USPS form), so that formatting alone never counts as a change."""
    raw = customer.address
    country = raw.country.strip().upper()
    address = raw  # kept as typed if the registry would refuse it (it says why when written)
    with contextlib.suppress(MemberInvalid):
        address = normalise_address(
            RawAddress(raw.line1, raw.line2, raw.city, raw.region, raw.postal_code, country)
        )
    return {
        "name": " ".join(customer.name.split()),
        "email": _as_registry_would(normalise_email, customer.email.strip()),
        "phone": _as_registry_would(normalise_phone, customer.phone.strip(), country or "US"),
        "address_line1": address.line1.strip(),
        "address_line2": address.line2.strip(),
        "city": address.city.strip(),
        "region": address.region.strip(),
        "postal_code": address.postal_code.strip(),
        "country": (address.country or country).strip().upper(),
    }


def values_hash(values: Values) -> str:
    """A digest of the synced fields in a fixed order (unit separators keep "ab","c" and
    "a","bc" apart); called twice per member per run, so kept cheap."""
    joined = "\x1f".join(values.get(name, "") for name in FIELDS)
    return hashlib.blake2b(joined.encode(), digest_size=20).hexdigest()


def updated_member(member: Member, values: Values) -> Member:
    """``member`` with the synchronised fields set from ``values``."""
    first, last, organisation = member.first_name, member.last_name, member.organisation
    name = values["name"]
    if name != member.display_name:
        if member.account_type is AccountType.CORPORATE:
            organisation = name
        else:
            parts = name.rsplit(" ", 1)
            first, last = (parts[0], parts[1]) if len(parts) == 2 else ("", parts[0])
    return replace(
        member,
        first_name=first,
        last_name=last,
        organisation=organisation,
        email=values["email"],
        phone=values["phone"],
        address=address_of(values),
    )


def address_of(values: Values) -> Address:
    return Address(
        line1=values["address_line1"],
        line2=values["address_line2"],
        city=values["city"],
        region=values["region"],
        postal_code=values["postal_code"],
        country=values["country"],
    )


def customer_draft(number: str, currency: str, values: Values) -> CustomerDraft:
    return CustomerDraft(
        number=number,
        name=values["name"],
        email=values["email"],
        phone=values["phone"],
        address=address_of(values),
        currency=currency,
    )
