"""The matching rules in the portal (Reconciliation > Matching rules): the active YAML and
the version runs record, the history with who and why, uploading a new version and
rolling back (admins). A spec that cannot be compiled is shown again with the line of
every fault, and nothing is stored.
"""

from __future__ import annotations

from typing import Annotated
from urllib.parse import quote_plus

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response

from ledgerlink.mapping.errors import SpecError, SpecProblem
from ledgerlink.recon import rule_specs
from ledgerlink.web.deps import Admin, DatabaseDep, Viewer
from ledgerlink.web.portal.rendering import render

#: Included by ``recon_pages.router`` before ``/recon/{scope_id}``.
router = APIRouter()


def _page(
    request: Request,
    db: DatabaseDep,
    *,
    yaml_text: str | None = None,
    reason: str = "",
    notice: str = "",
    problem: str = "",
    problems: list[SpecProblem] | None = None,
    status_code: int = 200,
) -> Response:
    with db.read() as session:
        active = rule_specs.active(session)
        history = [rule_specs.version_out(row) for row in rule_specs.history(session)]
    return render(
        request,
        "recon_rules.html",
        status_code=status_code,
        active=active,
        history=history,
        yaml_text=active.text if yaml_text is None else yaml_text,
        reason=reason,
        notice=notice,
        problem=problem,
        problems=problems or [],
    )


def _done(notice: str) -> Response:
    return RedirectResponse(f"/recon/rules?notice={quote_plus(notice)}", 303)


@router.get("/recon/rules")
def rules_page(request: Request, _: Viewer, db: DatabaseDep, notice: str = "") -> Response:
    return _page(request, db, notice=notice)


@router.post("/recon/rules")
def upload_rules(
    request: Request,
    principal: Admin,
    db: DatabaseDep,
    yaml: Annotated[str, Form(max_length=256 * 1024)] = "",
    reason: Annotated[str, Form(max_length=500)] = "",
) -> Response:
    try:
        with db.transaction() as session:
            row = rule_specs.save(session, principal, yaml, reason)
            label = f"{rule_specs.NAME}@v{row.version}"
    except SpecError as exc:  # the draft again, with its lines
        return _page(
            request, db, yaml_text=yaml, reason=reason, problems=exc.problems, status_code=422
        )
    except rule_specs.ReasonRequired as exc:
        return _page(request, db, yaml_text=yaml, problem=str(exc), status_code=422)
    return _done(f"Saved {label}; the next run uses it.")


@router.post("/recon/rules/rollback")
def rollback_rules(
    request: Request,
    principal: Admin,
    db: DatabaseDep,
    version: Annotated[int, Form(ge=0)],
    reason: Annotated[str, Form(max_length=500)] = "",
) -> Response:
    try:
        with db.transaction() as session:
            row = rule_specs.rollback(session, principal, version, reason)
            label = f"{rule_specs.NAME}@v{row.version}"
    except (rule_specs.RuleVersionNotFound, rule_specs.ReasonRequired, SpecError) as exc:
        return _page(request, db, problem=str(exc), status_code=422)
    return _done(f"Rolled back to version {version} as {label}; the next run uses it.")
