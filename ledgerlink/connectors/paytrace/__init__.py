"""PayTrace JSON API v1: password-grant tokens, sales, refunds, voids, exports, batches,
customer profiles. Card data never passes through ledgerlink: we send customer ids and
hosted-field tokens, and read back masked numbers only."""

from ledgerlink.connectors.paytrace.gateway import PayTraceGateway, PayTraceOptions

__all__ = ["PayTraceGateway", "PayTraceOptions"]
