"""Pure domain types and rules: no I/O, no SQLAlchemy, no HTTP (checked with mypy --strict)."""
