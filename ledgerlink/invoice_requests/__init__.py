"""Invoice created → payment request.

When a ledger (Sage 500, SBC) raises a new open invoice for a customer linked to a member,
ledgerlink does what the member's setting says: nothing (the default), e-mail a pay link
(amount due, due date, the invoice), or charge the stored card or bank profile on the
due date (autopay, with the customer's consent recorded and audited). Each invoice is
requested or charged once: its row in ``invoice_requests`` is claimed before the e-mail
or the charge.

* :mod:`.preferences` — the member's setting and the autopay consent;
* :mod:`.detection` — reading each ledger's new invoices by the ledger's own mark;
* :mod:`.requesting` — the e-mail, the charge, a decline's follow-up;
* :mod:`.jobs` — the periodic job that runs both.
"""
