"""Registers the ``paytrace`` connection kind (PayTrace card gateway)."""

from __future__ import annotations

from pathlib import Path

from ledgerlink.connectors import registry
from ledgerlink.connectors.paytrace import form
from ledgerlink.connectors.paytrace.settings import PayTraceSettings
from ledgerlink.connectors.paytrace.wiring import paytrace_gateway

PAYTRACE = registry.register(
    registry.ConnectorKind(
        kind="paytrace",
        label="PayTrace",
        role="gateway",
        settings_model=PayTraceSettings,
        secret_names=frozenset({"password", "webhook_secret"}),
        gateway=paytrace_gateway,
        settings_template="paytrace_settings.html",
        template_dir=Path(__file__).parent / "templates",
        form_fields=form.FORM_FIELDS,
        form_settings=form.form_settings,
        page_context=form.page_context,
        position=30,
    )
)
