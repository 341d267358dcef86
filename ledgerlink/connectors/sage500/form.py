"""The Sage 500 settings form's part that is not one text box per setting: the ACH payment
method (``payment_methods.ach``), entered as two boxes (method, GL cash account)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any


def form_settings(
    text: Mapping[str, str], values: Callable[[str], list[str]], settings: dict[str, Any]
) -> None:
    """Both boxes empty: no mapping (ACH receipts use the default method and the payment
    spec's ACH cash account). Not on the form: the stored mapping is kept."""
    if "ach_payment_method_id" not in text and "ach_gl_account" not in text:
        return
    methods = dict(settings.get("payment_methods") or {})
    method = text.get("ach_payment_method_id", "")
    account = text.get("ach_gl_account", "")
    if method or account:
        methods["ach"] = {"payment_method_id": method or "ACH", "bank_account_id": account or None}
    else:
        methods.pop("ach", None)
    settings["payment_methods"] = methods
