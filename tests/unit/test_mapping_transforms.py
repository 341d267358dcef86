"""Each finance transform as a pure function."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from ledgerlink.domain.money import Money
from ledgerlink.mapping.errors import MappingValueError
from ledgerlink.mapping.tables import LookupTable
from ledgerlink.mapping.transforms import addresses, gl_accounts, names, payment_status
from ledgerlink.mapping.transforms.currency import (
    CurrencyTable,
    FixedRates,
    Rounding,
    convert,
    from_source,
    rescale,
    to_target,
)
from ledgerlink.mapping.transforms.customer_ids import (
    DEFAULT_FORMATS,
    IdFormat,
    LinkTable,
    harmonise,
    normalise_id,
)

# ---- currency -------------------------------------------------------------------------------


def test_gaining_precision_is_exact() -> None:
    assert rescale(1234, 2, 3, Rounding.HALF_UP) == rescale(1234, 2, 3, Rounding.DOWN)
    assert rescale(1234, 2, 3, Rounding.HALF_UP).minor == 12340


@pytest.mark.parametrize(
    ("minor", "rule", "rounded", "remainder"),
    [
        (1005, Rounding.HALF_UP, 101, -5),  # 1.005 → 1.01: ties away from zero
        (-1005, Rounding.HALF_UP, -101, 5),
        (1005, Rounding.HALF_EVEN, 100, 5),  # 1.005 → 1.00: ties to even
        (1015, Rounding.HALF_EVEN, 102, -5),
        (1009, Rounding.DOWN, 100, 9),
        (1004, Rounding.HALF_UP, 100, 4),
    ],
)
def test_losing_precision_rounds_by_the_rule_and_reports_the_remainder(
    minor: int, rule: Rounding, rounded: int, remainder: int
) -> None:
    moved = rescale(minor, 3, 2, rule)
    assert (moved.minor, moved.remainder) == (rounded, remainder)
    assert moved.minor * 10 + moved.remainder == minor


def test_target_digits_come_from_the_targets_currency_table_first() -> None:
    sage500 = CurrencyTable({"USD": 3})
    assert to_target(Money(1250, "USD"), sage500, Rounding.HALF_UP).text == "12.500"
    assert to_target(Money(1250, "JPY"), sage500, Rounding.HALF_UP).text == "1250"  # ISO 4217


def test_amounts_with_the_sources_precision_become_iso_money() -> None:
    found = from_source("12.345", "USD", CurrencyTable({"USD": 3}), Rounding.HALF_UP)
    assert found.money == Money(1235, "USD")
    assert found.remainder == -5


def test_conversion_records_the_rate_and_the_remainder() -> None:
    rates = FixedRates({("EUR", "USD"): Decimal("1.0832")}, source="ECB", as_of=dt.date(2026, 3, 1))
    result = convert(Money(1000, "EUR"), "USD", rates, dt.date(2026, 3, 2), Rounding.HALF_UP)
    assert result.amount == Money(1083, "USD")
    assert result.rate.rate == Decimal("1.0832")
    assert result.rate.source == "ECB"
    assert result.exact == Decimal("10.832")
    assert result.remainder == Decimal("0.002")
    back = convert(Money(1083, "USD"), "EUR", rates, dt.date(2026, 3, 2), Rounding.HALF_UP)
    assert back.amount.currency == "EUR"  # the inverse pair is derived


def test_conversion_without_a_rate_says_what_to_do() -> None:
    with pytest.raises(MappingValueError, match="no exchange rate from EUR to GBP"):
        convert(Money(1, "EUR"), "GBP", FixedRates({}), dt.date(2026, 1, 1), Rounding.HALF_UP)


# ---- GL accounts ----------------------------------------------------------------------------

GL = LookupTable.build(
    "gl_accounts",
    ["transaction_type", "payment_method"],
    ["gl_account"],
    [
        {"transaction_type": "sale", "payment_method": "card", "gl_account": "1010-00"},
        {"transaction_type": "*", "payment_method": "*", "gl_account": "9999-00"},
        {"transaction_type": "chargeback", "payment_method": "*", "gl_account": "1015-00"},
    ],
)


@pytest.mark.parametrize(
    ("kind", "method", "account"),
    [
        ("SALE", "CREDIT_DEBIT", "1010-00"),
        ("capture", "visa", "1010-00"),
        ("CHARGEBACK", "card", "1015-00"),  # one wildcard beats two
        ("refund", "ach", "9999-00"),
    ],
)
def test_gl_account_by_transaction_type_and_payment_method(
    kind: str, method: str, account: str
) -> None:
    assert gl_accounts.gl_account_for(GL, kind, method) == account


def test_an_unknown_transaction_type_is_named() -> None:
    with pytest.raises(
        MappingValueError, match="'TIP' is not one of sale, refund, fee, chargeback"
    ):
        gl_accounts.gl_account_for(GL, "TIP", "card")


def test_a_missing_gl_row_says_which_keys_and_how_to_fix() -> None:
    table = LookupTable.build("gl", ["transaction_type", "payment_method"], ["gl_account"], [])
    with pytest.raises(MappingValueError) as caught:
        gl_accounts.gl_account_for(table, "sale", "card")
    assert "transaction_type='sale'" in caught.value.message
    assert "add a row" in caught.value.fix


# ---- customer IDs ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "system", "expected"),
    [(" m42 ", "member", "M00042"), ("42", "sage500", "C00042"), ("acme01", "sage500", "ACME01")],
)
def test_ids_are_normalised_to_their_systems_format(raw: str, system: str, expected: str) -> None:
    assert normalise_id(raw, DEFAULT_FORMATS[system], system) == expected


def test_too_long_ids_are_refused() -> None:
    with pytest.raises(MappingValueError, match="longer than 12"):
        normalise_id("ABCDEFGHIJKLM", DEFAULT_FORMATS["sage500"], "sage500")


def test_links_win_over_derivation() -> None:
    links = LinkTable([{"member": "M00042", "sage500": "ACME01", "sbc_contact_id": "abc123"}])
    assert harmonise("m42", "member", "sage500", links).value == "ACME01"
    assert harmonise("ACME01", "sage500", "member", links).value == "M00042"
    assert harmonise("M00042", "member", "sbc_contact_id", links).how == "linked"


def test_without_a_link_ids_are_derived_from_the_number() -> None:
    found = harmonise("M00042", "member", "paytrace")
    assert (found.value, found.how) == ("C00042", "derived")
    wide = {**DEFAULT_FORMATS, "sage500": IdFormat("CUST", 6, "upper", 12)}
    assert harmonise("M00042", "member", "sage500", formats=wide).value == "CUST000042"


def test_upstream_only_ids_need_a_link() -> None:
    with pytest.raises(MappingValueError, match="not linked"):
        harmonise("C00001", "paytrace", "sbc_contact_id")


# ---- addresses ------------------------------------------------------------------------------


def test_us_addresses_are_standardised_by_scourgify() -> None:
    found = addresses.normalise_address(
        "123 main street", "apt 4", "springfield", "il", "62704", "usa"
    )
    assert found == {
        "address_line_1": "123 MAIN ST",
        "address_line_2": "APT 4",
        "city": "SPRINGFIELD",
        "region": "IL",
        "postal_code": "62704",
        "country": "US",
    }


def test_other_addresses_are_trimmed_and_cased() -> None:
    found = addresses.normalise_address(
        "  1 HIGH   STREET ", "", "LONDON", "", "ec1a 1bb", "United Kingdom"
    )
    assert found["address_line_1"] == "1 High Street"
    assert found["city"] == "London"
    assert found["postal_code"] == "EC1A 1BB"
    assert found["country"] == "GB"
    assert addresses.clean_line("McDonald Road") == "McDonald Road"  # mixed case is kept


@pytest.mark.parametrize(
    ("raw", "two", "three"), [("usa", "US", "USA"), ("Germany", "DE", "DEU"), ("UK", "GB", "GBR")]
)
def test_countries_become_iso_3166_codes(raw: str, two: str, three: str) -> None:
    assert addresses.country_code(raw) == two
    assert addresses.country_code(raw, 3) == three


def test_an_unknown_country_is_named() -> None:
    with pytest.raises(MappingValueError, match="'Atlantis' is not a country"):
        addresses.country_code("Atlantis")


# ---- payment status -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("record", "status"),
    [
        ({"transaction_type": "SALE", "response_code": 101}, "approved"),
        ({"transaction_type": "SALE", "success": False, "response_code": 102}, "declined"),
        ({"transaction_type": "SALE", "settled": "3/15/2026 2:00:00 AM"}, "settled"),
        ({"transaction_type": "VOID"}, "voided"),
        ({"transaction_type": "SALE", "response_code": 103}, "voided"),
        ({"transaction_type": "REFUND", "response_code": 106}, "refunded"),
        ({"status": "Declined"}, "declined"),
    ],
)
def test_paytrace_status_of_a_transaction(record: dict[str, object], status: str) -> None:
    assert payment_status.paytrace_status(record) == status


def test_statuses_translate_through_the_editable_table() -> None:
    table = payment_status.default_table()
    assert payment_status.translate_status(table, "approved", "sage500") == "Applied"
    assert payment_status.translate_status(table, "voided", "sbc") == "UNPAID"
    assert payment_status.translate_status(table, "refunded", "action") == "post_refund"
    with pytest.raises(MappingValueError, match="no column 'quickbooks'"):
        payment_status.translate_status(table, "approved", "quickbooks")


# ---- names ----------------------------------------------------------------------------------


def test_names_split_at_the_known_last_name_or_the_last_space() -> None:
    assert names.split_name("Ada van der Berg", "van der Berg") == ("Ada", "van der Berg")
    assert names.split_name("Ada van der Berg") == ("Ada van der", "Berg")
    assert names.split_name("Cher") == ("", "Cher")
