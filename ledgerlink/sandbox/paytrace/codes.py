"""PayTrace response codes, error codes and their texts, in one place.

Texts marked *vendor* are PayTrace's own wording (published examples); the others are
the simulator's choice where the public documentation gives no text (see
docs/sandbox-paytrace.md, "Where the simulator had to choose").
"""

from __future__ import annotations

from typing import Final

# Response codes (``response_code``) -------------------------------------------------------
ERRORS: Final = 1
EXPORTED: Final = 100
APPROVED: Final = 101
DECLINED: Final = 102
AVS_VOIDED: Final = 103
REFUNDED: Final = 106
VOIDED: Final = 109
CAPTURED: Final = 112
CUSTOMER_CREATED: Final = 160
CUSTOMER_UPDATED: Final = 161
CUSTOMER_DELETED: Final = 162

STATUS_MESSAGES: Final[dict[int, str]] = {
    ERRORS: "One or more errors has occurred.",  # vendor
    EXPORTED: "Your request has been successfully completed.",
    APPROVED: "Your transaction was successfully approved.",  # vendor
    DECLINED: "Your transaction was not approved.",  # vendor
    AVS_VOIDED: "Your transaction was successfully approved. However, it was voided "
    "because your address and/or CSC did not match.",
    REFUNDED: "Your transaction was successfully refunded.",  # vendor
    VOIDED: "Your transaction was successfully voided.",  # vendor
    CAPTURED: "Your transaction was successfully captured.",  # vendor
}

# Error codes (keys of ``errors``) ----------------------------------------------------------
E_INTEGRATOR: Final = "24"
E_CUSTOMER_NOT_FOUND: Final = "30"
E_CUSTOMER_ID: Final = "31"
E_CARD_NUMBER: Final = "35"
E_EXP_MONTH: Final = "43"
E_EXP_YEAR: Final = "44"
E_START_DATE: Final = "46"
E_END_DATE: Final = "47"
E_BATCH: Final = "48"
E_AMOUNT: Final = "50"
E_TRANSACTION_ID: Final = "58"
E_CUSTOMER_EXISTS: Final = "171"
E_NOT_FOUND: Final = "811"
E_NOT_CAPTURABLE: Final = "816"
E_NOT_REFUNDABLE: Final = "817"
E_NOT_VOIDABLE: Final = "818"
E_AMOUNT_EXCEEDS: Final = "822"
E_DUPLICATE: Final = "981"
E_HOSTED_FIELDS: Final = "1032"
E_REQUEST: Final = "1100"

ERROR_TEXTS: Final[dict[str, str]] = {
    E_INTEGRATOR: "Please provide a valid integrator_id.",
    E_CUSTOMER_NOT_FOUND: "The Customer ID that you provided was not found.",
    E_CUSTOMER_ID: "Please provide a valid Customer ID.",
    E_CARD_NUMBER: "Please provide a valid Credit Card Number.",  # vendor
    E_EXP_MONTH: "Please provide a valid Expiration Month.",
    E_EXP_YEAR: "Please provide a valid Expiration Year.",
    E_START_DATE: "Please provide a valid Start Date (MM/DD/YYYY).",
    E_END_DATE: "Please provide a valid End Date (MM/DD/YYYY).",
    E_BATCH: "Please provide a valid Batch Number.",
    E_AMOUNT: "Please provide a valid Transaction Amount.",
    E_TRANSACTION_ID: "Please provide a valid Transaction ID.",  # vendor
    E_CUSTOMER_EXISTS: "Please provide a unique customer ID.",
    E_NOT_FOUND: "The Transaction ID that you provided was not found.",  # vendor
    E_NOT_CAPTURABLE: "The Transaction ID that you provided could not be captured. "
    "Only uncaptured, approved authorizations can be captured.",  # vendor
    E_NOT_REFUNDABLE: "The Transaction ID that you provided could not be refunded. Only "
    "settled transactions can be refunded.  Please try to void the transaction instead.",  # vendor
    E_NOT_VOIDABLE: "The Transaction ID that you provided could not be voided. Only "
    "transactions that are pending settlement can be voided.",  # vendor
    E_AMOUNT_EXCEEDS: "The amount exceeds the amount remaining on the original transaction.",
    E_DUPLICATE: "This transaction appears to be a duplicate of a recent transaction "
    "(same card, amount and invoice) and was not processed.",
    E_HOSTED_FIELDS: "Please provide a valid hpf_token and enc_key (they expire and work once).",
    E_REQUEST: "The request body must be a JSON object.",
}

# Transaction status in exports (status_code / status_message) -------------------------------
STATUS_AUTHORIZED: Final = "A"
STATUS_PENDING: Final = "P"
STATUS_SETTLED: Final = "S"
STATUS_VOIDED: Final = "V"
STATUS_DECLINED: Final = "D"
STATUS_TEXTS: Final[dict[str, str]] = {
    STATUS_AUTHORIZED: "Authorized, not captured",
    STATUS_PENDING: "Pending settlement",
    STATUS_SETTLED: "Settled",
    STATUS_VOIDED: "Voided",
    STATUS_DECLINED: "Declined",
}
