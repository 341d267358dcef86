"""Loading specs: every problem names the file, the line, the field and what is allowed."""

from __future__ import annotations

import pytest

from ledgerlink.mapping.engine import compile_spec, load_table
from ledgerlink.mapping.errors import SpecError
from ledgerlink.mapping.loader import (
    load_document,
    packaged_file,
    packaged_names,
    packaged_text,
    replace_table_rows,
)
from ledgerlink.mapping.spec import MappingSpec

GOOD = """\
name: demo
source: registry.member
target: sbc.contact
tables:
  gl_accounts:
    keys: [transaction_type, payment_method]
    values: [gl_account]
    rows:
      # the card clearing account
      - {transaction_type: sale, payment_method: card, gl_account: '1010'}
fields:
  name: upper(source.name)
  reference:
    expr: source.member_number
    required: true
"""


def problems(text: str) -> list[tuple[int | None, str, str]]:
    def load() -> None:
        compile_spec(load_document(text, "demo.yaml"), {})

    with pytest.raises(SpecError) as caught:
        load()
    assert all(p.file == "demo.yaml" for p in caught.value.problems)
    return [(p.line, p.field, p.message) for p in caught.value.problems]


def test_a_good_spec_loads_and_compiles() -> None:
    compiled = compile_spec(load_document(GOOD, "demo.yaml"), {})
    assert compiled.apply({"name": "ada", "member_number": "M1"}).output == {
        "name": "ADA",
        "reference": "M1",
    }


def test_an_unknown_key_names_its_line_and_the_allowed_keys() -> None:
    [(line, field, message)] = problems(GOOD.replace("    required: true", "    requird: true"))
    assert (line, field) == (15, "fields.reference.requird")
    assert "unknown key 'requird'; allowed: expr, value, default, when, required" in message


def test_a_bad_expression_names_line_field_and_column() -> None:
    [(line, field, message)] = problems(GOOD.replace("upper(source.name)", "uper(source.name)"))
    assert (line, field) == (12, "fields.name")
    assert "unknown function 'uper'" in message
    assert "at column 1" in message


def test_a_missing_required_key_is_reported() -> None:
    [(_line, field, message)] = problems(GOOD.replace("target: sbc.contact\n", ""))
    assert field == "target"
    assert message == "is required but missing"


def test_a_bad_rounding_rule_lists_the_allowed_rules() -> None:
    [(line, field, message)] = problems(GOOD + "currency:\n  rounding: nearest\n")
    assert (line, field) == (17, "currency.rounding")
    assert "'half_up', 'half_even' or 'down'" in message


def test_unquoted_decimals_are_refused_so_they_stay_exact() -> None:
    [(line, field, message)] = problems(GOOD.replace("gl_account: '1010'", "gl_account: 10.10"))
    assert line == 10
    assert field == "tables.gl_accounts.rows[0].gl_account"
    assert "quote it" in message


def test_table_rows_are_checked_against_their_columns() -> None:
    found = problems(GOOD.replace("payment_method: card, ", ""))
    assert found == [(10, "tables.gl_accounts.rows[0]", "row has no 'payment_method' column")]


def test_yaml_syntax_errors_name_the_line() -> None:
    [(line, _field, message)] = problems(GOOD.replace("  name: upper", "  name: [upper"))
    assert line is not None
    assert line >= 12
    assert "not valid YAML" in message


def test_the_name_must_match_the_spec_being_saved() -> None:
    with pytest.raises(SpecError, match="names cannot change"):
        load_document(GOOD, "x.yaml", expected_name="other")


def test_every_shipped_spec_and_table_loads_and_compiles() -> None:
    shared = {}
    documents = {}
    for name in packaged_names():
        documents[name] = load_document(packaged_text(name) or "", packaged_file(name), name)
        if documents[name].document.kind == "table":
            shared[name] = load_table(documents[name])
    specs = [d for d in documents.values() if isinstance(d.document, MappingSpec)]
    assert {d.name for d in specs} >= {
        "member_to_sbc_contact",
        "sbc_contact_to_member",
        "member_to_sage500_customer",
        "sage500_customer_to_member",
        "sage500_customer_to_paytrace_customer",
        "paytrace_customer_to_sage500_customer",
        "sbc_contact_to_paytrace_customer",
        "paytrace_customer_to_sbc_contact",
        "paytrace_transaction_to_sage500_cash_receipt",
        "paytrace_transaction_to_sbc_contact_payment",
    }
    for loaded in specs:
        compile_spec(loaded, shared)


def test_replacing_table_rows_keeps_comments_and_other_keys() -> None:
    rows = [{"transaction_type": "sale", "payment_method": "card", "gl_account": "2020"}]
    edited = replace_table_rows(GOOD, "demo.yaml", "gl_accounts", rows)
    assert "gl_account: '2020'" in edited or "gl_account: 2020" in edited
    assert "upper(source.name)" in edited
    assert "required: true" in edited
    reloaded = load_document(edited, "demo.yaml").document
    assert isinstance(reloaded, MappingSpec)
    assert reloaded.tables["gl_accounts"].rows == rows


def _refusal(text: str) -> tuple[int | None, str]:
    with pytest.raises(SpecError) as raised:
        load_document(text, "demo.yaml")
    [problem] = raised.value.problems
    return problem.line, problem.message


def test_a_spec_nested_thousands_deep_is_refused_with_its_line() -> None:
    line, message = _refusal(GOOD + "description:\n  " + "[" * 5000 + "]" * 5000 + "\n")
    assert line == GOOD.count("\n") + 2
    assert "nested more than 64 levels" in message


def test_nesting_in_block_style_is_counted_too() -> None:
    deep = "".join("  " * i + f"k{i}:\n" for i in range(80)) + "  " * 80 + "leaf: 1\n"
    line, message = _refusal("extra:\n" + "\n".join("  " + row for row in deep.splitlines()))
    assert line is not None
    assert 60 < line < 70
    assert "nested" in message


def test_an_alias_bomb_is_refused_at_the_alias_that_goes_over_the_limit() -> None:
    bomb = 'lol: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n'
    previous = "a"
    for name in "bcdef":  # nine to the sixth: 531,441 strings once expanded
        bomb += f"{name}: &{name} [" + ",".join([f"*{previous}"] * 9) + "]\n"
        previous = name
    line, message = _refusal(GOOD + bomb)
    assert line is not None
    assert line > GOOD.count("\n") + 1
    assert "aliases" in message


def test_a_few_aliases_and_merge_keys_still_load() -> None:
    spec = GOOD.replace(
        "fields:\n",
        "x-defaults: &defaults {expr: source.member_number, required: true}\nfields:\n",
    ).replace(
        "  reference:\n    expr: source.member_number\n    required: true\n",
        "  reference: *defaults\n",
    )
    with pytest.raises(SpecError) as raised:  # x-defaults is not a spec key, but it parsed
        load_document(spec, "demo.yaml")
    assert [p.field for p in raised.value.problems] == ["x-defaults"]
