"""The expression language: what it computes, and what it refuses (with a clear message)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from ledgerlink.domain.money import Money
from ledgerlink.mapping.errors import ExpressionError, MappingValueError
from ledgerlink.mapping.expressions import Env, compile_expression
from ledgerlink.mapping.scope import DEFAULT_CONTEXT, Scope
from ledgerlink.mapping.tables import LookupTable

GL = LookupTable.build(
    "gl_accounts",
    ["transaction_type", "payment_method"],
    ["gl_account"],
    [
        {"transaction_type": "sale", "payment_method": "card", "gl_account": "1010"},
        {"transaction_type": "sale", "payment_method": "*", "gl_account": "1000"},
    ],
)
ENV = Env(tables={"gl_accounts": GL}, params={"currency": "USD"})


def run(text: str, source: dict[str, Any] | None = None, **kwargs: Any) -> Any:
    compiled = compile_expression(text, ENV)
    scope = Scope(source or {}, kwargs.get("existing"), {}, ENV.params, DEFAULT_CONTEXT)
    return compiled.evaluate(scope)


def test_text_functions_nest() -> None:
    assert run("upper(trim(source.last_name))", {"last_name": "  van der Berg "}) == "VAN DER BERG"


def test_money_is_exact_and_uses_params() -> None:
    assert run("money(source.amount, params.currency)", {"amount": "12.50"}) == Money(1250, "USD")


def test_lookup_prefers_the_most_specific_row() -> None:
    assert run("lookup('gl_accounts', 'SALE', 'card')") == "1010"
    assert run("lookup('gl_accounts', source.t, source.m)", {"t": "sale", "m": "ach"}) == "1000"


def test_coalesce_skips_null_and_empty() -> None:
    assert run("coalesce(source.a, source.b, 'x')", {"a": "", "b": None}) == "x"


def test_if_and_comparisons() -> None:
    text = "if(source.kind == 'corporate' and not is_empty(source.company), source.company, 'n/a')"
    assert run(text, {"kind": "corporate", "company": "Acme"}) == "Acme"
    assert run(text, {"kind": "personal"}) == "n/a"
    assert run("source.n >= 3", {"n": 4}) is True


def test_nested_fields_and_missing_fields_read_as_null() -> None:
    assert run("source.created.at", {"created": {"at": "x"}}) == "x"
    assert run("source.created.at", {}) is None


def test_string_escapes_and_decimal_literals() -> None:
    assert run("concat('it\\'s ', 1.50)") == "it's 1.50"
    assert run("number('2.5') == 2.5") is True
    assert isinstance(run("2.5"), Decimal)


def test_constant_calls_are_folded_at_compile_time() -> None:
    assert compile_expression("upper('abc')", ENV).constant


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("__import__('os').system('id')", "unknown function '__import__'"),
        ("eval('1+1')", "unknown function 'eval'"),
        ("open('/etc/passwd')", "unknown function 'open'"),
        ("os.system", "unknown name 'os'"),
        ("source.__class__", "field names cannot start with '_'"),
        ("source.amount * 2", "arithmetic is not allowed"),
        ("lookup('nope', 1)", "unknown table 'nope'"),
        ("lookup(source.table, 1)", "must be written as 'quoted text'"),
        ("upper(source.a, source.b)", "upper() takes 1 argument(s), got 2"),
        ("params.missing", "unknown parameter 'params.missing'"),
        ("upper(source.a", "expected ',' or ')' but found the end"),
        ("vars.x", "unknown variable 'vars.x'"),
    ],
)
def test_refused_expressions_say_why(text: str, expected: str) -> None:
    with pytest.raises(ExpressionError) as caught:
        compile_expression(text, ENV)
    assert expected in str(caught.value)


def test_unknown_function_lists_what_is_allowed() -> None:
    with pytest.raises(ExpressionError) as caught:
        compile_expression("system('ls')", ENV)
    assert "allowed functions:" in caught.value.message
    assert "upper" in caught.value.message
    assert caught.value.column == 1


def test_deep_nesting_is_refused_before_the_stack_is() -> None:
    with pytest.raises(ExpressionError, match="nests deeper"):
        compile_expression("upper(" * 100 + "'x'" + ")" * 100, ENV)


def test_bad_input_raises_a_mapping_error_not_a_crash() -> None:
    with pytest.raises(MappingValueError, match="decimal places"):
        run("money(source.amount, 'USD')", {"amount": "1.234"})
    with pytest.raises(MappingValueError, match="float"):
        run("money(source.amount, 'USD')", {"amount": 1.5})
    with pytest.raises(MappingValueError, match="cannot compare"):
        run("source.a < source.b", {"a": "x", "b": 1})
