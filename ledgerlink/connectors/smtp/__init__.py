"""Outgoing e-mail (SMTP): where finance gets its daily digest and alerts. The sending
itself is in :mod:`ledgerlink.payments.notify`; this package holds the connection kind."""
