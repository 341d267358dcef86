"""Rendering portal pages: one Jinja2 environment, the navigation, and error pages."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates
from jinja2 import BaseLoader, ChoiceLoader, Environment, FileSystemLoader, TemplateNotFound

from ledgerlink import __version__
from ledgerlink.connectors import registry
from ledgerlink.domain.money import Money
from ledgerlink.identity.roles import Role
from ledgerlink.mapping.versions import describe_version

templates = Jinja2Templates(directory=Path(__file__).parent / "templates")


class ConnectorTemplates(BaseLoader):
    """The connectors' own templates (their settings forms), looked up through the
    registry when asked, so a kind registered later is found too."""

    def get_source(
        self, environment: Environment, template: str
    ) -> tuple[str, str | None, Callable[[], bool] | None]:
        for folder in registry.template_dirs():
            try:
                return FileSystemLoader(folder).get_source(environment, template)
            except TemplateNotFound:
                continue
        raise TemplateNotFound(template)


templates.env.loader = ChoiceLoader([templates.env.loader, ConnectorTemplates()])  # type: ignore[list-item]
templates.env.globals["version"] = __version__
#: A spec version's reference (``recon_rules@package:…``) in words: "shipped version (28c8342)".
templates.env.filters["version_words"] = lambda ref: describe_version(ref).text if ref else ""
templates.env.filters["money"] = lambda m: m.format_display() if isinstance(m, Money) else m


@dataclass(frozen=True)
class NavItem:
    label: str
    path: str
    role: Role


#: The portal's sections, in the order users expect them. A section appears here only
#: once its pages exist; capabilities add theirs as they land.
NAVIGATION: list[NavItem] = [
    NavItem("Dashboard", "/", Role.VIEWER),
    NavItem("Members", "/members", Role.VIEWER),
    NavItem("Sync", "/sync", Role.VIEWER),
    NavItem("Payments", "/payments", Role.VIEWER),
    NavItem("Reconciliation", "/recon", Role.VIEWER),
    NavItem("Accounting Integration", "/connections", Role.VIEWER),
    NavItem("Audit", "/audit", Role.VIEWER),
    NavItem("Settings", "/settings", Role.VIEWER),
]


def render(request: Request, template: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    principal = getattr(request.state, "principal", None)
    nav = [item for item in NAVIGATION if principal is not None and principal.can(item.role)]
    csrftoken = request.scope.get("csrftoken")
    return templates.TemplateResponse(
        request,
        template,
        {
            "principal": principal,
            "nav": nav,
            "current_path": request.url.path,
            "csrftoken": csrftoken() if callable(csrftoken) else "",
            "Role": Role,
            **context,
        },
        status_code=status_code,
    )


def render_error(request: Request, status_code: int, message: str) -> HTMLResponse:
    return render(
        request, "error.html", status_code=status_code, status=status_code, message=message
    )
