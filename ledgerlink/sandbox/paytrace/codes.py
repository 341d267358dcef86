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
CHECK_PROCESSED: Final = 120
CHECK_REFUNDED: Final = 122
CHECK_MANAGED: Final = 124
CHECK_NOT_PROCESSED: Final = 125
LEVEL_THREE_ADDED: Final = 170

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
    CHECK_PROCESSED: "Your check was successfully processed.",  # vendor
    CHECK_REFUNDED: "Your check was successfully refunded.",  # vendor
    CHECK_MANAGED: "Your check was successfully managed.",  # vendor
    CHECK_NOT_PROCESSED: "Your check was NOT successfully processed.",  # vendor
}

# Error codes (keys of ``errors``) ----------------------------------------------------------
E_INTEGRATOR: Final = "24"
E_CUSTOMER_NOT_FOUND: Final = "30"
E_CUSTOMER_ID: Final = "31"
E_CARD_NUMBER: Final = "35"
E_EXP_MONTH: Final = "43"
E_EXP_YEAR: Final = "44"
E_CHECK_ACCOUNT: Final = "45"
E_CHECK_ROUTING: Final = "46"
# the simulator's codes for export dates (PayTrace's 46 is the routing number of a check)
E_START_DATE: Final = "96"
E_END_DATE: Final = "97"
E_BATCH: Final = "48"
E_AMOUNT: Final = "50"
E_CHECK_NOT_FOUND: Final = "80"
E_TRANSACTION_ID: Final = "58"
E_CUSTOMER_EXISTS: Final = "171"
E_NOT_FOUND: Final = "811"
E_NOT_CAPTURABLE: Final = "816"
E_NOT_REFUNDABLE: Final = "817"
E_NOT_VOIDABLE: Final = "818"
E_AMOUNT_EXCEEDS: Final = "822"
E_PERMISSIONS: Final = "981"
E_LEVEL_THREE: Final = "880"
E_LEVEL_THREE_CARD: Final = "881"
E_HOSTED_FIELDS: Final = "1032"
E_REQUEST: Final = "1100"

ERROR_TEXTS: Final[dict[str, str]] = {
    E_INTEGRATOR: "Please provide a valid integrator_id.",
    # vendor: "Customer ID, <id>, was not found or is incomplete." (see customer_not_found)
    E_CUSTOMER_NOT_FOUND: "The Customer ID that you provided was not found or is incomplete.",
    E_CUSTOMER_ID: "Please provide a valid Customer ID.",
    E_CARD_NUMBER: "Please provide a valid Credit Card Number.",  # vendor
    E_EXP_MONTH: "Please provide a valid Expiration Month.",
    E_EXP_YEAR: "Please provide a valid Expiration Year.",
    E_CHECK_ACCOUNT: "Please provide a valid Checking Account Number.",  # vendor
    E_CHECK_ROUTING: "Please provide a valid Transit Routing Number.",  # vendor
    E_START_DATE: "Please provide a valid Start Date (MM/DD/YYYY).",
    E_END_DATE: "Please provide a valid End Date (MM/DD/YYYY).",
    E_BATCH: "Please provide a valid Batch Number.",
    E_AMOUNT: "Please provide a valid Transaction Amount.",
    E_CHECK_NOT_FOUND: (  # vendor
        "The Check ID that you provided was not found in the PayTrace record."
    ),
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
    E_PERMISSIONS: "Log in failed for insufficient permissions.",  # vendor
    E_LEVEL_THREE: "Please provide valid Level 3 line items.",
    E_LEVEL_THREE_CARD: "Level 3 data can only be added to an approved, unsettled sale or "
    "authorization of the card brand of this endpoint.",
    E_HOSTED_FIELDS: "Please provide a valid hpf_token and enc_key (they expire and work once).",
    E_REQUEST: "The request body must be a JSON object.",
}

# Transaction status in exports (status_code / status_message) -------------------------------
STATUS_AUTHORIZED: Final = "A"
STATUS_PENDING: Final = "P"
STATUS_SETTLED: Final = "S"
STATUS_VOIDED: Final = "V"
STATUS_DECLINED: Final = "D"
STATUS_HELD: Final = "H"  # checks: held until funded
STATUS_RETURNED: Final = "R"  # checks: returned by the bank (R01, R02, …)
STATUS_TEXTS: Final[dict[str, str]] = {
    STATUS_AUTHORIZED: "Authorized, not captured",
    STATUS_PENDING: "Pending settlement",
    STATUS_SETTLED: "Settled",
    STATUS_VOIDED: "Voided",
    STATUS_DECLINED: "Declined",
    STATUS_HELD: "Held",
    STATUS_RETURNED: "Returned",
}

#: Check funding (``/v1/checks/manage/fund``) and void: a check that is not held / not
#: pending. Vendor wording.
CHECK_NOT_MANAGEABLE_TEXT: Final = (
    "The Check ID that you have provided was not found in the PayTrace records. "
    "It may already be voided or settled."
)

#: A check refund of a check that is not a settled sale (the simulator's wording).
CHECK_NOT_REFUNDABLE_TEXT: Final = (
    "The Check ID that you provided could not be refunded. Only settled check sales can be "
    "refunded; void a check that has not settled."
)

#: Declines: the answer to $0.29 recorded from PayTrace's live sandbox (a public client's
#: remote test), and the generic decline for other configured amounts.
DECLINE_MESSAGES: Final[dict[str, str]] = {"0.29": "  EXPIRED CARD - Expired card"}
DECLINE_MESSAGE: Final = "    DECLINE - Do not honor"
DUPLICATE_MESSAGE: Final = "    DECLINE - Duplicate transaction"


def customer_not_found(customer_id: str) -> str:
    """PayTrace's own wording names the id (recorded on a checks call)."""
    return f"Customer ID, {customer_id}, was not found or is incomplete."


#: NACHA return reason codes the sandbox can return a check with (``/_sandbox/checks/return``).
ACH_RETURN_CODES: Final[dict[str, str]] = {
    "R01": "Insufficient Funds",
    "R02": "Account Closed",
    "R03": "No Account/Unable to Locate Account",
    "R04": "Invalid Account Number Structure",
    "R05": "Unauthorized Debit to Consumer Account Using Corporate SEC Code",
    "R06": "Returned per ODFI's Request",
    "R07": "Authorization Revoked by Customer",
    "R08": "Payment Stopped",
    "R09": "Uncollected Funds",
    "R10": "Customer Advises Originator is Not Known to Receiver and/or Not Authorized",
    "R11": "Customer Advises Entry Not in Accordance with the Terms of the Authorization",
    "R12": "Account Sold to Another DFI",
    "R16": "Account Frozen/Entry Returned per OFAC Instruction",
    "R20": "Non-Transaction Account",
    "R29": "Corporate Customer Advises Not Authorized",
}
