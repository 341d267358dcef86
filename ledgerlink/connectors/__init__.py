"""Adapters to the external systems, each behind a Protocol of :mod:`.base`.

``sbc`` (Sage Business Cloud Accounting v3.1), ``paytrace`` (PayTrace JSON API v1) and
``sage500`` (Sage 500 ERP tables and staging import). They share one HTTP client factory
(:mod:`.http`): timeouts, pooling, per-upstream throttling, retries, metrics.
"""
