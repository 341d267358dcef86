"""Bank account and routing numbers (ACH) never reach a log in full: under their keys, or
named in text, only the last four digits are kept; other numbers are left alone."""

from __future__ import annotations

from ledgerlink.logs import redact, redact_text


def test_account_and_routing_numbers_under_their_keys_keep_only_the_last_four() -> None:
    logged = redact(
        {
            "check": {"account_number": "123456789012", "routing_number": "325070760"},
            "check_account": 987654321,
            "amount": 123456789012,
            "check_transaction_id": 9981601,
            "invoice_id": "123456789",
        }
    )
    assert logged == {
        "check": {"account_number": "xx9012", "routing_number": "xx0760"},
        "check_account": "xx4321",
        "amount": 123456789012,
        "check_transaction_id": 9981601,
        "invoice_id": "123456789",
    }


def test_account_numbers_named_in_text_are_masked_and_other_numbers_kept() -> None:
    text = 'sent {"account_number": "123456789012", "amount": "123456789"} routing_number=325070760'
    assert redact_text(text) == (
        'sent {"account_number": "xx9012", "amount": "123456789"} routing_number=xx0760'
    )
    assert redact_text("invoice 123456789 paid, check 9981601") == (
        "invoice 123456789 paid, check 9981601"
    )
