"""What became of an autopay charge whose run was interrupted after it was sent.

The charge path writes a charge (``sending``) under its idempotency key before calling
PayTrace, so a rerun never sends a second sale under the same key; but a run killed in
between leaves that charge ``sending`` with no outcome. Once its claim has lapsed (the
dead run's request has long ended), PayTrace's own record says what happened: a sale
for the invoice on the charged profile since the charge was written is that charge
(adopted, and brought in by the PayTrace poller like any payment); none means the request
never reached PayTrace, and the invoice may be charged under the next key.

The look-up is the one pay-link charges use too (:mod:`ledgerlink.payments.lapsed_claims`).
"""

from __future__ import annotations

from ledgerlink.payments.lapsed_claims import StartedSale, find_started_sale

__all__ = ["StartedSale", "find_started_sale"]
