"""Contact details in one canonical form, and errors that say what to type instead."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ledgerlink.domain.members import MemberInvalid
from ledgerlink.members.normalise import (
    RawAddress,
    country_code,
    normalise_address,
    normalise_email,
    normalise_phone,
)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Jane.Doe@Example.ORG", "Jane.Doe@example.org"),
        ("  ap@acme.example.com ", "ap@acme.example.com"),
        ("", ""),
    ],
)
def test_emails_are_trimmed_and_their_domain_lower_cased(raw: str, expected: str) -> None:
    assert normalise_email(raw) == expected


@pytest.mark.parametrize("raw", ["jane", "jane@", "@example.org", "jane doe@example.org"])
def test_a_bad_email_names_the_field_and_the_form_to_use(raw: str) -> None:
    with pytest.raises(MemberInvalid) as bad:
        normalise_email(raw)
    (problem,) = bad.value.problems
    assert problem.field == "email"
    assert "name@example.org" in problem.fix


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("(212) 555-0123", "+12125550123"),
        ("212.555.0123", "+12125550123"),
        ("+1 212 555 0123", "+12125550123"),
        ("+44 20 7946 0958", "+442079460958"),
        ("", ""),
    ],
)
def test_phones_become_e164_with_us_as_the_default_region(raw: str, expected: str) -> None:
    assert normalise_phone(raw) == expected


def test_a_phone_of_another_region_can_be_the_default() -> None:
    assert normalise_phone("020 7946 0958", region="GB") == "+442079460958"


@pytest.mark.parametrize("raw", ["12345", "call me", "+1 555 0000"])
def test_a_bad_phone_says_to_give_the_area_or_country_code(raw: str) -> None:
    with pytest.raises(MemberInvalid) as bad:
        normalise_phone(raw)
    assert bad.value.problems[0].field == "phone"
    assert "country code" in bad.value.problems[0].fix


def test_a_us_address_is_put_in_usps_form() -> None:
    address = normalise_address(
        RawAddress("123 main street apt 4", "", "new york", "New York", "10001", "usa")
    )
    assert (address.line1, address.line2, address.city, address.region) == (
        "123 MAIN ST",
        "APT 4",
        "NEW YORK",
        "NY",
    )
    assert (address.postal_code, address.country) == ("10001", "US")


def test_a_po_box_scourgify_cannot_parse_is_kept_not_refused() -> None:
    address = normalise_address(RawAddress("PO Box 12", "", "Boston", "MA", "02101", "US"))
    assert address.line1 == "PO BOX 12"
    assert address.city == "BOSTON"


def test_an_incomplete_us_address_names_each_missing_part() -> None:
    with pytest.raises(MemberInvalid) as bad:
        normalise_address(RawAddress("1 Main St", "", "", "ZZ", "123", "US"))
    fields = {p.field for p in bad.value.problems}
    assert fields == {"city", "region", "postal_code"}


def test_other_countries_keep_their_conventions() -> None:
    address = normalise_address(RawAddress("1 High Street", "", "London", "", "sw1a 1aa", "UK"))
    assert (address.line1, address.postal_code, address.country) == (
        "1 High Street",
        "SW1A 1AA",
        "GB",
    )


def test_no_address_lines_is_the_empty_address() -> None:
    assert normalise_address(RawAddress(country="US")).line1 == ""


@pytest.mark.parametrize(("raw", "code"), [("us", "US"), ("Germany", "DE"), ("GBR", "GB")])
def test_countries_become_iso_3166_alpha_2(raw: str, code: str) -> None:
    assert country_code(raw) == code


def test_an_unknown_country_names_the_field() -> None:
    with pytest.raises(MemberInvalid, match="two-letter code"):
        country_code("Atlantis")


@given(st.sampled_from(["(212) 555-0123", "+44 20 7946 0958", "415 555 0100", ""]))
def test_phone_normalisation_is_idempotent(raw: str) -> None:
    once = normalise_phone(raw)
    assert normalise_phone(once) == once


@given(
    st.sampled_from(
        [
            RawAddress("123 main street apt 4", "", "new york", "ny", "10001", ""),
            RawAddress("500 5th avenue", "suite 200", "New York", "NY", "10110-0002", "US"),
            RawAddress("PO Box 12", "", "Boston", "MA", "02101", "US"),
            RawAddress("1 High Street", "Flat 2", "London", "", "SW1A 1AA", "GB"),
        ]
    )
)
def test_address_normalisation_is_idempotent(raw: RawAddress) -> None:
    once = normalise_address(raw)
    again = normalise_address(
        RawAddress(once.line1, once.line2, once.city, once.region, once.postal_code, once.country)
    )
    assert again == once
