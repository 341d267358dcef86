"""NACHA return codes in words a finance user can act on.

An ACH payment can come back days after it settled: the payer's bank returns it with an
R-code. ledgerlink reverses the receipt and opens an exception whose reason is the code
and these words (what happened, what to do). Codes not listed here are named as they are,
with PayTrace's own text where it sent one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final


@dataclass(frozen=True)
class ReturnCode:
    code: str
    #: what happened, short ("Insufficient funds")
    title: str
    #: what it means and what finance should do
    advice: str

    @property
    def words(self) -> str:
        """``R01 Insufficient funds: …`` as the exception names it."""
        return f"{self.code} {self.title}: {self.advice}"


_ANOTHER_WAY = "ask them to pay another way (card, or a new bank account)"

RETURN_CODES: Final[dict[str, ReturnCode]] = {
    r.code: r
    for r in (
        ReturnCode(
            "R01",
            "Insufficient funds",
            "the payer's account did not have enough money; ask them to pay another way, or "
            "to confirm funds are there before charging the account again",
        ),
        ReturnCode(
            "R02",
            "Account closed",
            f"the payer closed this bank account; {_ANOTHER_WAY}, and remove the account "
            "from their PayTrace profile",
        ),
        ReturnCode(
            "R03",
            "No account / unable to locate account",
            f"the bank has no such account; check the account details with the payer, or "
            f"{_ANOTHER_WAY}",
        ),
        ReturnCode(
            "R04",
            "Invalid account number",
            f"the account number is not a valid one at that bank; check it with the payer, or "
            f"{_ANOTHER_WAY}",
        ),
        ReturnCode(
            "R05",
            "Unauthorized debit to a consumer account",
            "the payer's bank says a consumer account was debited with a business entry; "
            "get a new authorisation before charging it again",
        ),
        ReturnCode(
            "R06",
            "Returned at your bank's request",
            "your own bank asked for it back; ask your bank why before charging again",
        ),
        ReturnCode(
            "R07",
            "Authorization revoked by the payer",
            "the payer disputes it: they withdrew the authorisation for this account; do not "
            "charge it again without a new signed authorisation",
        ),
        ReturnCode(
            "R08",
            "Payment stopped",
            "the payer told their bank to stop this payment; contact them before charging again",
        ),
        ReturnCode(
            "R09",
            "Uncollected funds",
            "the money in the account was not yet available; ask the payer when to try again, "
            "or to pay another way",
        ),
        ReturnCode(
            "R10",
            "Not authorized",
            "the payer disputes it: they tell their bank they never authorised it; do not "
            "charge the account again without a new signed authorisation",
        ),
        ReturnCode(
            "R11",
            "Entry not in line with the authorization",
            "the payer says the debit differs from what they authorised (amount or date); "
            "check the authorisation with them",
        ),
        ReturnCode(
            "R12",
            "Account sold to another bank",
            f"the account moved to another bank; get the new details from the payer, or "
            f"{_ANOTHER_WAY}",
        ),
        ReturnCode(
            "R16",
            "Account frozen",
            f"the bank has frozen the payer's account; {_ANOTHER_WAY}",
        ),
        ReturnCode(
            "R20",
            "Non-transaction account",
            f"the account cannot be debited (a savings or similar account); {_ANOTHER_WAY}",
        ),
        ReturnCode(
            "R29",
            "Corporate customer advises not authorized",
            "the paying company tells its bank this debit was not authorised; ask their "
            "accounts payable to authorise your company (its ACH debit filter) or to pay "
            "another way",
        ),
    )
}


def return_code(code: str, reason: str = "") -> ReturnCode:
    """The words for ``code``; a code not in the table is named as it is (with the bank's
    reason where PayTrace gave one)."""
    key = code.strip().upper()
    known = RETURN_CODES.get(key)
    if known is not None:
        return known
    title = reason.strip() or "Returned by the payer's bank"
    return ReturnCode(
        key or "R??",
        title,
        f"the payer's bank returned the payment with code {key or '(none given)'}; look the "
        f"code up with your bank or PayTrace, and {_ANOTHER_WAY}",
    )


__all__ = ["RETURN_CODES", "ReturnCode", "return_code"]
