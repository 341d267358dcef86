"""Mapping version references in words: what the portal shows instead of the id."""

from __future__ import annotations

from ledgerlink.mapping.versions import describe_version, saved_version


def test_a_shipped_version_reads_as_the_shipped_version_with_a_short_digest() -> None:
    label = describe_version("member_to_sbc_contact@package:28c8342c9226")
    assert label.text == "shipped version (28c8342)"
    assert label.ref == "member_to_sbc_contact@package:28c8342c9226"
    assert label.name == "member_to_sbc_contact"


def test_a_saved_version_names_its_number_and_who_saved_it() -> None:
    assert describe_version("payment_status@v3", "ana@example.org").text == (
        "v3 saved by ana@example.org"
    )
    assert describe_version("payment_status@v3").text == "v3"
    assert saved_version("payment_status@v3") == ("payment_status", 3)
    assert saved_version("payment_status@package:28c8342c9226") is None


def test_a_configuration_file_version_and_an_unknown_form() -> None:
    assert describe_version("x@config:1a2b3c4d5e6f").text == "configuration file version (1a2b3c4)"
    assert describe_version("draft").text == "draft"
