"""Payments (issue 9): PayTrace payments become applied cash receipts, exactly once.

This package starts with the durable inbox and its inbound endpoints; posting, refunds,
voids, chargebacks and the exceptions queue build on it.
"""
