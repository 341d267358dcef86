"""Pay by link: a signed, expiring link per invoice, a payer-facing page where the card is
typed only into PayTrace's hosted fields, and the charge by the one-time token it gives."""
