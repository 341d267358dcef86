"""The states of an invoice's payment request, and what a run does with each.

E-mail (a pay link)::

    pending ─▶ sending ─▶ sent
                 │ (the worker died: the e-mail may have gone)
                 └─▶ resending ─▶ sent
                        │ (died again)
                        └─▶ unconfirmed      (never a third e-mail; finance looks)

SMTP has no idempotency key, so an e-mail whose worker died between sending and recording
cannot be told apart from one that never left. The send intent (``sending``) is written
first; a lapsed intent is sent once more (a customer with two copies of the same link
pays once: the link reads what is due live), and a second lapse stops there. So a crash
costs at most one extra e-mail and never a missing one.

Autopay::

    scheduled ─(due date)─▶ charging ─▶ charged
                               ├─▶ followup_pending ─▶ followup_sending ─▶ declined
                               └─▶ not_charged   (nothing left to pay, no stored profile...)

A charge carries the idempotency key :func:`charge_key` (connection + invoice); the
charge path writes it before calling PayTrace, so a rerun after a crash finds that charge
instead of charging again. A charge a crash left without an outcome is settled from
PayTrace's own record once its claim lapsed (:mod:`.settling`): the sale found is
adopted; none found means the request never reached PayTrace, and only then is the
invoice charged under the next key (:func:`next_charge_key`).
"""

from __future__ import annotations

#: Where a request starts, by the member's setting.
FIRST_STATE = {"email": "pending", "autopay": "scheduled"}

#: A claim moves a request from the first state to the second; a claim whose lease ran
#: out (its worker died) moves it as the third says (None: no further try).
CLAIMS: dict[str, str] = {
    "pending": "sending",
    "scheduled": "charging",
    "followup_pending": "followup_sending",
}
LAPSED: dict[str, str | None] = {
    "sending": "resending",
    "resending": None,
    "charging": "charging",
    "followup_sending": "followup_resending",
    "followup_resending": None,
}
#: Where a request goes when its lease lapsed and no further try is made.
GAVE_UP = "unconfirmed"

#: How many runs may release a request (an upstream that did not answer) before it fails.
MAX_ATTEMPTS = 8

#: In words, for the member page and the API.
LABELS: dict[str, str] = {
    "pending": "pay link to be e-mailed",
    "sending": "e-mailing the pay link",
    "resending": "e-mailing the pay link again after an interruption",
    "sent": "pay link e-mailed",
    "scheduled": "autopay on the due date",
    "charging": "charging the stored card or bank account",
    "charged": "charged",
    "followup_pending": "declined; pay link to be e-mailed",
    "followup_sending": "declined; e-mailing a pay link",
    "followup_resending": "declined; e-mailing a pay link again after an interruption",
    "declined": "declined; pay link e-mailed",
    "unconfirmed": "interrupted: check before asking again",
    "not_sent": "not e-mailed",
    "not_charged": "not charged",
    "cancelled": "cancelled",
    "failed": "failed",
}


#: Every autopay charge's idempotency key starts so (its settling job finds them by it).
KEY_PREFIX = "autopay:"


def charge_key(connection_id: int, invoice_id: str) -> str:
    """The idempotency key of the invoice's autopay charge: the same for every rerun of
    one charge."""
    return f"{KEY_PREFIX}{connection_id}:{invoice_id}"


def next_charge_key(key: str) -> str:
    """The key after ``key``: used only once PayTrace is known not to have charged under
    it (it refused the call, or has no sale for it after an interruption)."""
    base, _, number = key.rpartition("#")
    if base and number.isdigit():
        return f"{base}#{int(number) + 1}"
    return f"{key}#2"
