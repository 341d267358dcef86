"""Registers the ``smtp`` connection kind (outgoing e-mail for digests and alerts)."""

from __future__ import annotations

from pathlib import Path

from ledgerlink.connectors import registry
from ledgerlink.connectors.smtp import form
from ledgerlink.connectors.smtp.settings import SmtpSettings
from ledgerlink.payments.notify import check_smtp

SMTP = registry.register(
    registry.ConnectorKind(
        kind="smtp",
        label="E-mail (SMTP)",
        role="mail",
        settings_model=SmtpSettings,
        secret_names=frozenset({"password"}),
        settings_template="smtp_settings.html",
        template_dir=Path(__file__).parent / "templates",
        form_fields=form.FORM_FIELDS,
        form_settings=form.form_settings,
        check=check_smtp,
        position=40,
    )
)
