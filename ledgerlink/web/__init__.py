"""The web layer: REST API under /api/v1, the admin portal, health and metrics."""
