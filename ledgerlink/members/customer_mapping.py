"""A member and its ledger customer through the mapping specs: how a registry member
becomes the ledger's customer (when linking creates it, and when a sync updates it), and
how the customer reads back in the registry's terms.

The member-details sync compares and merges in the registry's vocabulary (``FIELDS``). The
ledger's side of that comparison is the ``<ledger>_to_member`` spec run over the customer;
what is written to the ledger is the ``member_to_<ledger>`` spec run over the member. So a
finance team that edits a spec (a name cut to 40 characters, a different address style)
changes what the sync writes without a release, and every run records which versions it
used. A spec may be lossy (Sage 500 names hold 40 characters): the merge keeps what each
side last held apart (see ``merge``), so such a spec never flows back into the registry.

Each ledger's customer is shown to the specs as a record of that system (an SBC contact,
a Sage 500 customer row), built from and read back into the connector's
:class:`CustomerAccount` through one table of field paths per system.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Final, TypedDict

from sqlalchemy.orm import Session

from ledgerlink.connectors import registry
from ledgerlink.connectors.errors import Misconfigured
from ledgerlink.connectors.registry import CustomerRecord
from ledgerlink.domain.accounts import Address, CustomerAccount, CustomerDraft
from ledgerlink.domain.members import AccountType, Member
from ledgerlink.mapping import MappingContext, MappingResult
from ledgerlink.mapping.errors import MappingValueError
from ledgerlink.mapping.transforms.addresses import country_code
from ledgerlink.mapping.transforms.names import clean_name
from ledgerlink.opaque import MappedRecord
from ledgerlink.store.mapping_repo import ActiveMapping, MappingRepository

Values = dict[str, str]


def record_layout(system: str) -> CustomerRecord:
    """Where ``system``'s customer record keeps each field (its connector's descriptor)."""
    layout = registry.descriptor(system).customer_record
    if layout is None:
        raise Misconfigured(
            system,
            f"{registry.label(system)} does not say how its customer records read "
            "(ConnectorKind.customer_record)",
        )
    return layout


#: The registry member's fields as the specs name them (``registry.member``).
MEMBER_FIELDS: Final = {
    "email": "email",
    "phone": "phone",
    "address_line1": "address_line_1",
    "address_line2": "address_line_2",
    "city": "city",
    "region": "region",
    "postal_code": "postal_code",
    "country": "country",
}


class SpecFailed(Exception):
    """A spec could not map a field the system it writes to keeps; nothing is written."""

    def __init__(self, version: str, problems: list[str]) -> None:
        super().__init__(f"the mapping spec {version} could not map: " + "; ".join(problems))
        self.message = str(self)
        self.fix = "correct the record, or the spec under Mappings (preview it on this record)"


class MemberRecord(TypedDict):
    """A registry member as the mapping specs name its fields (``registry.member``)."""

    member_number: str
    account_type: str
    status: str
    membership_level: str
    first_name: str
    last_name: str
    company_name: str
    email: str
    phone: str
    address_line_1: str
    address_line_2: str
    city: str
    region: str
    postal_code: str
    country: str
    currency: str


def member_record(member: Member, currency: str) -> MemberRecord:
    """A registry member as the mapping specs name its fields (``registry.member``)."""
    address = member.address
    return {
        "member_number": member.number,
        "account_type": member.account_type.value,
        "status": member.status.value,
        "membership_level": member.level_code,
        "first_name": member.first_name,
        "last_name": member.last_name,
        "company_name": member.organisation,
        "email": member.email,
        "phone": member.phone,
        "address_line_1": address.line1,
        "address_line_2": address.line2,
        "city": address.city,
        "region": address.region,
        "postal_code": address.postal_code,
        "country": address.country,
        "currency": currency,
    }


def _put(record: MappedRecord, path: str, value: Any) -> None:
    *parents, leaf = path.split(".")
    for part in parents:
        record = record.setdefault(part, {})
    record[leaf] = value


def _get(record: MappedRecord, path: str) -> Any:
    value: Any = record
    for part in path.split("."):
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value


def _text(value: Any) -> str:
    return "" if value is None else str(value).strip()


#: How many mapped records a :class:`CustomerMapping` remembers at most (a sync page of 500
#: members makes about five each; the run calls ``forget`` between pages).
MEMO_LIMIT: Final = 8192


@dataclass(frozen=True)
class CustomerMapping:
    """The two member ↔ customer specs of one ledger kind, compiled, with their versions.

    A sync maps the same member several times (to compare, to write, to record what the
    ledger holds after the write), so results are remembered until ``forget``."""

    system: str
    to_ledger: ActiveMapping
    to_registry: ActiveMapping
    _memo: dict[tuple[Any, ...], Any] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def load(cls, session: Session, repository: MappingRepository, system: str) -> CustomerMapping:
        kind = registry.descriptor(system)  # each ledger kind ships its specs
        forward = kind.spec(registry.MEMBER_TO_CUSTOMER)
        backward = kind.spec(registry.CUSTOMER_TO_MEMBER)
        return cls(system, repository.load(session, forward), repository.load(session, backward))

    @property
    def versions(self) -> dict[str, str]:
        """spec name → the version reference a run records (``name@v3``)."""
        return {
            mapping.spec.name: mapping.version for mapping in (self.to_ledger, self.to_registry)
        }

    def ledger_values(self, customer: CustomerAccount, member: Member, currency: str) -> Values:
        """The customer's fields in the registry's terms, through the ``to_registry`` spec
        (the linked member is its ``existing`` record: its last name decides where a name
        splits). A field the spec cannot map keeps the ledger's value as typed: the
        registry refuses it, naming the field, if it is ever written there."""
        address = customer.address
        key = (
            "to_registry",
            customer.name,
            customer.email,
            customer.phone,
            address,
            customer.number,
            customer.currency,
            member,
            currency,
        )
        return dict(self._remember(key, lambda: self._ledger_values(customer, member, currency)))

    def _ledger_values(self, customer: CustomerAccount, member: Member, currency: str) -> Values:
        record = customer_record(self.system, customer)
        result = self.to_registry.compiled.apply(
            record, member_record(member, currency), MappingContext()
        )
        out, failed = result.output, {e.field for e in result.errors}
        corporate = member.account_type is AccountType.CORPORATE
        values: Values = {}
        for name, key in MEMBER_FIELDS.items():
            if key in failed:
                values[name] = _text(_get(record, record_layout(self.system).fields[name]))
            else:
                values[name] = _text(out.get(key))
        company = clean_name(_text(out.get("company_name")))
        person = clean_name(f"{_text(out.get('first_name'))} {_text(out.get('last_name'))}")
        values["name"] = (company if corporate and company else person) or company
        if not values["name"]:
            values["name"] = clean_name(customer.name)
        return values

    def as_ledger_would(self, member: Member, currency: str) -> Values:
        """The member's fields as the ledger holds them once it agrees with the registry:
        the ``to_ledger`` spec, then read back. Tells a ledger value that only looks
        different (a name cut to 40 characters) from one changed there. Empty when the
        spec cannot map the member (writing it then fails, saying why)."""
        try:
            record = self._ledger_output(member, currency)
        except SpecFailed:
            return {}
        customer = customer_from_record(self.system, record, member.number, currency)
        return self.ledger_values(customer, member, currency)

    def draft(self, number: str, currency: str, member: Member) -> CustomerDraft:
        """What the ledger is sent for ``member``: the ``to_ledger`` spec's output. Raises
        :class:`SpecFailed` when the spec cannot map a field the ledger keeps."""
        record = self._ledger_output(member, currency)
        customer = customer_from_record(self.system, record, number, currency)
        return CustomerDraft(
            number=number,
            name=customer.name,
            email=customer.email,
            phone=customer.phone,
            address=customer.address,
            currency=currency,
        )

    # -- helpers ----------------------------------------------------------------------------

    def forget(self) -> None:
        """Drop remembered results (a sync does so after each page)."""
        self._memo.clear()

    def _remember(self, key: tuple[Any, ...], compute: Callable[[], Any]) -> Any:
        found = self._memo.get(key)
        if found is None:
            if len(self._memo) >= MEMO_LIMIT:
                self._memo.clear()
            found = self._memo[key] = compute()
        return found

    def _ledger_output(self, member: Member, currency: str) -> MappedRecord:
        return self._remember(  # type: ignore[no-any-return]
            ("to_ledger", member, currency), lambda: self._map_to_ledger(member, currency)
        )

    def _map_to_ledger(self, member: Member, currency: str) -> MappedRecord:
        result = self.to_ledger.compiled.apply(
            member_record(member, currency), None, MappingContext()
        )
        return checked(result, self.to_ledger.version, record_layout(self.system).fields.values())


def customer_record(system: str, customer: CustomerAccount) -> MappedRecord:
    """The customer as a record of its system (``sbc.contact``, ``sage500.customer``), the
    way the specs read it."""
    address = customer.address
    values = {
        "name": customer.name,
        "email": customer.email,
        "phone": customer.phone,
        "address_line1": address.line1,
        "address_line2": address.line2,
        "city": address.city,
        "region": address.region,
        "postal_code": address.postal_code,
        "country": address.country,
    }
    record: MappedRecord = {}
    for name, path in record_layout(system).fields.items():
        _put(record, path, values[name] or None)
    _put(record, record_layout(system).number, customer.number)
    _put(record, record_layout(system).currency, customer.currency)
    return record


def customer_from_record(
    system: str, record: MappedRecord, number: str, currency: str
) -> CustomerAccount:
    """A spec's output record of ``system`` as the customer a connector writes."""
    values = {
        name: _text(_get(record, path)) for name, path in record_layout(system).fields.items()
    }
    return CustomerAccount(
        system=system,
        id="",
        number=number,
        name=values["name"],
        email=values["email"],
        phone=values["phone"],
        address=Address(
            line1=values["address_line1"],
            line2=values["address_line2"],
            city=values["city"],
            region=values["region"],
            postal_code=values["postal_code"],
            country=_alpha2(values["country"]),
        ),
        currency=currency,
    )


def checked(result: MappingResult, version: str, wanted: Iterable[str]) -> MappedRecord:
    """``result``'s output, or :class:`SpecFailed` naming the fields among ``wanted`` (output
    paths) the spec could not map; errors in fields nobody writes are not in the way."""
    paths = set(wanted)
    problems = [
        f"{e.field}: {e.message}"
        for e in result.errors
        if e.field in paths or any(p.startswith(e.field + ".") for p in paths)
    ]
    if problems:
        raise SpecFailed(version, problems)
    return result.output


def _alpha2(country: str) -> str:
    """Customers carry ISO alpha-2 countries (a Sage 500 spec writes ``CountryID`` in
    alpha-3; the connector converts back when it stages the row)."""
    try:
        return country_code(country, 2) if country else ""
    except MappingValueError:
        return country
