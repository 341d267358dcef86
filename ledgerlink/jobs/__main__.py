"""``python -m ledgerlink.jobs``: a job worker without the rest of the CLI."""

from __future__ import annotations

from ledgerlink.jobs.worker import run_worker
from ledgerlink.logs import configure_logging
from ledgerlink.settings import Settings


def main() -> None:
    settings = Settings()
    configure_logging(settings.log_level, settings.log_format)
    run_worker(settings)


if __name__ == "__main__":
    main()
