"""The rules spec: the shipped default loads; a spec with a mistake, or one the matcher
could not run, is refused on load naming its line, the field and the fix."""

from __future__ import annotations

import pytest

from ledgerlink.mapping.errors import SpecError
from ledgerlink.recon.rules import default_spec, load_spec, packaged_text

GOOD = packaged_text()


def refused(text: str) -> list[tuple[int | None, str, str]]:
    with pytest.raises(SpecError) as caught:
        load_spec(text, "rules.yaml")
    return [(p.line, p.field, p.message) for p in caught.value.problems]


def line_of(text: str, fragment: str) -> int:
    for number, line in enumerate(text.splitlines(), start=1):
        if fragment in line:
            return number
    raise AssertionError(fragment)


def test_the_shipped_default_loads_and_is_versioned() -> None:
    spec = default_spec()
    assert spec.version == "default@1"
    assert [key.rule for key in spec.spec.receipts.keys] == [
        "by_transaction_id",
        "by_idempotency_key",
        "by_reference",
    ]
    assert spec.spec.deposits.fee_netting is True


def test_the_store_version_overrides_the_file_version() -> None:
    assert load_spec(GOOD, "rules.yaml", version=7).version == "default@7"


def test_a_float_tolerance_is_refused_on_its_line() -> None:
    text = GOOD.replace("days: 3 ", "days: 2.5 ")
    [(line, field, message)] = refused(text)
    assert (line, field) == (line_of(text, "days: 2.5"), "tolerance.days")
    assert "floating-point" in message


def test_an_unknown_key_lists_the_allowed_ones() -> None:
    text = GOOD.replace("  fee_netting: true", "  fee_neting: true")
    [(line, field, message)] = refused(text)
    assert (line, field) == (line_of(text, "fee_neting"), "deposits.fee_neting")
    assert "allowed: fee_netting, by_reference" in message


def test_a_pattern_that_does_not_compile_is_refused_with_its_line() -> None:
    text = GOOD.replace("(?P<id>[0-9]+)'", "(?P<id>[0-9]+'")
    [(line, field, message)] = refused(text)
    assert (line, field) == (line_of(text, "(?P<id>[0-9]+'"), "receipts.keys[2].pattern")
    assert "not a valid pattern" in message


def test_a_look_ahead_the_matcher_cannot_run_is_refused() -> None:
    text = GOOD.replace("'^paytrace:(?P<id>[^:]+):'", "'^paytrace:(?P<id>[^:]+)(?=:)'")
    [(line, field, message)] = refused(text)
    assert (line, field) == (line_of(text, "(?=:)"), "receipts.keys[1].pattern")
    assert "look-ahead" in message


def test_a_pattern_without_an_id_group_says_how_to_mark_it() -> None:
    text = GOOD.replace("(?P<id>[A-Z0-9]+)", "([A-Z0-9]+)")
    [(line, field, message)] = refused(text)
    assert field == "deposits.by_reference.pattern"
    assert line == line_of(text, "([A-Z0-9]+)")
    assert "(?P<id>" in message


def test_a_bad_prefix_pattern_is_refused_at_its_item() -> None:
    text = GOOD.replace("'^BATCH[-_ #]*'", "'^BATCH[-_ #*'")
    [(line, field, _)] = refused(text)
    assert (line, field) == (
        line_of(text, "'^BATCH[-_ #*'"),
        "normalise.batch_number.strip_prefixes[0]",
    )


def test_two_rules_with_one_name_are_refused() -> None:
    text = GOOD.replace("{rule: split_over_invoices", "{rule: by_reference")
    [(line, field, message)] = refused(text)
    assert field == "receipts.split_payments.rule"
    assert line == line_of(text, "split_payments:")
    assert "already used at receipts.keys[2].rule" in message


def test_a_missing_section_and_a_wrong_kind_of_value_are_both_reported() -> None:
    text = GOOD.replace("version: 1", "version: one").split("\ndeposits:")[0]
    problems = refused(text)
    fields = {field for _, field, _ in problems}
    assert fields == {"version", "deposits"}


def test_yaml_that_does_not_parse_is_refused_with_its_line() -> None:
    text = GOOD.replace("tolerance:\n", "tolerance:\n  - [\n", 1)
    [(line, _, message)] = refused(text)
    assert line is not None
    assert "not valid YAML" in message


def test_a_spec_that_is_not_a_mapping_is_refused() -> None:
    [(line, _, message)] = refused("- just\n- a list\n")
    assert line == 1
    assert "mapping" in message


def test_aliases_that_expand_too_far_are_refused_before_loading() -> None:
    bomb = "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{name}: &{name} [{', '.join(['*' + prev] * 10)}]\n"
        for prev, name in zip("abcdef", "bcdefg", strict=True)
    )
    [(_, _, message)] = refused(bomb)
    assert "aliases" in message
