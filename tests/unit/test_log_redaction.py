"""No secret and no card number ever reaches a log line."""

from __future__ import annotations

import io
import json
import logging
from decimal import Decimal

import pytest
import structlog
from hypothesis import given
from hypothesis import strategies as st

from ledgerlink.logs import configure_logging, luhn_valid, redact, redact_text

VISA_TEST = "4111111111111111"


def _with_luhn_check_digit(body: str) -> str:
    for check in "0123456789":
        if luhn_valid(body + check):
            return body + check
    raise AssertionError("unreachable: one check digit always fits")


def _capture() -> io.StringIO:
    stream = io.StringIO()
    configure_logging("debug", "json", stream=stream)
    return stream


def test_structlog_event_masks_secret_keys_but_keeps_harmless_ones() -> None:
    stream = _capture()
    structlog.get_logger("t").info(
        "oauth.refreshed",
        refresh_token="r-123",
        client_secret="s",
        token_type="bearer",
        expires_in=300,
    )
    line = json.loads(stream.getvalue().splitlines()[-1])
    assert line["refresh_token"] == "[REDACTED]"
    assert line["client_secret"] == "[REDACTED]"
    assert line["token_type"] == "bearer"
    assert line["expires_in"] == 300


def test_stdlib_library_logs_pass_through_the_same_redaction() -> None:
    stream = _capture()
    logging.getLogger("httpx").warning(
        "GET https://api.example/x?client_secret=abc&page=2 Authorization: Bearer eyJhbGciOi.x.y"
    )
    out = stream.getvalue()
    assert "abc" not in out
    assert "eyJhbGciOi" not in out
    assert "page=2" in out


def test_card_number_inside_an_exception_traceback_is_masked() -> None:
    stream = _capture()
    try:
        raise ValueError(f"card {VISA_TEST} declined")
    except ValueError:
        structlog.get_logger("t").exception("payment.failed")
    out = stream.getvalue()
    assert VISA_TEST not in out
    assert "[PAN ****1111]" in out


@given(
    # No card number starts with 0 (ISO/IEC 7812 gives 0 to no issuer), so zero-padded ids
    # are left alone.
    first=st.sampled_from("123456789"),
    body=st.text(alphabet="0123456789", min_size=11, max_size=17),
    separator=st.sampled_from(["", " ", "-"]),
)
def test_any_luhn_valid_13_to_19_digit_number_is_masked(
    first: str, body: str, separator: str
) -> None:
    pan = _with_luhn_check_digit(first + body)
    grouped = separator.join(pan[i : i + 4] for i in range(0, len(pan), 4))
    redacted = redact_text(f"charged {grouped} today")
    assert pan not in redacted.replace(" ", "").replace("-", "")
    assert f"****{pan[-4:]}" in redacted


@given(  # Luhn-valid by construction: a filter rejecting nine in ten is slow under load
    number=st.integers(min_value=10**11, max_value=10**18 - 1).map(
        lambda body: int(_with_luhn_check_digit(str(body)))
    )
)
def test_integer_card_numbers_in_structured_fields_are_masked(number: int) -> None:
    assert redact({"amount": number})["amount"] != number


def test_ordinary_ids_and_amounts_are_left_alone() -> None:
    assert redact_text("invoice 1234567 for 12500 cents") == "invoice 1234567 for 12500 cents"
    assert redact_text("4111111111111112") == "4111111111111112"  # fails Luhn: not a card
    assert redact({"transaction_id": 123456789}) == {"transaction_id": 123456789}


def test_decimal_amounts_keep_their_plain_digits() -> None:
    """A decimal amount (PayTrace's JSON numbers read as Decimal) is its digits, not the
    Python repr: previews built from redacted records read '75.0', not "Decimal('75.0')"."""
    assert redact({"amount": Decimal("75.0")}) == {"amount": "75.0"}
    assert redact({"amount": Decimal(VISA_TEST)})["amount"] != VISA_TEST


def test_nested_structures_are_redacted() -> None:
    value = redact({"request": {"headers": {"Authorization": "Bearer x"}, "body": [VISA_TEST]}})
    assert value == {
        "request": {"headers": {"Authorization": "[REDACTED]"}, "body": ["[PAN ****1111]"]}
    }


@pytest.mark.parametrize(
    "written",
    [
        "4111.1111.1111.1111",
        "4111/1111/1111/1111",
        "4111_1111_1111_1111",
        "4111\u00a01111\u00a01111\u00a01111",
        "3782.822463.10005",
    ],
)
def test_card_numbers_with_dots_slashes_or_underscores_are_masked_in_log_lines(
    written: str,
) -> None:
    stream = _capture()
    structlog.get_logger("t").warning("silent_post.refused", body=f"MASKEDCARD={written}")
    logging.getLogger("uvicorn.error").error("bad field %s", written)
    out = stream.getvalue()
    digits = "".join(c for c in written if c.isdigit())
    assert written not in out
    assert out.count(f"[PAN ****{digits[-4:]}]") == 2


separator_chars = st.characters(
    blacklist_categories=("L", "N", "Cs"), blacklist_characters="\r\n\v\f\x85\u2028\u2029"
)


@given(
    body=st.text(alphabet="0123456789", min_size=11, max_size=17),
    first=st.sampled_from("123456789"),
    size=st.integers(min_value=3, max_value=6),
    separator=st.text(separator_chars, min_size=1, max_size=2),
)
def test_any_card_number_in_groups_with_any_separator_is_masked(
    body: str, first: str, size: int, separator: str
) -> None:
    pan = _with_luhn_check_digit(first + body)
    groups = [pan[i : i + size] for i in range(0, len(pan), size)]
    if len(groups[-1]) < 3:  # regroup the last two so that every group has 3-6 digits
        tail = groups.pop(-2) + groups.pop()
        groups += [tail] if len(tail) <= 6 else [tail[:-3], tail[-3:]]
    redacted = redact({"message": f"charged {separator.join(groups)} today"})
    assert redacted == {"message": f"charged [PAN ****{pan[-4:]}] today"}
