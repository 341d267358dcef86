"""The reconciliation matching rules over the API: the active spec and its history, a new
version, a rollback. Viewers read; only admins change the rules (they change what
reconciles). A spec that cannot be compiled is a 422 whose ``errors`` name the line and
field of every fault (``web/domain_problems.py``), and nothing is stored.
"""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel, Field
from sqlalchemy.orm import Session

from ledgerlink.recon import rule_specs
from ledgerlink.web.api.inputs import INT64_MAX, CleanDocument, CleanText
from ledgerlink.web.api.outputs import ResponseModel
from ledgerlink.web.deps import Admin, ReadSession, Viewer, WriteSession
from ledgerlink.web.problems import Problem, problem_responses

#: Included by ``recon_api.router`` (prefix ``/recon``).
router = APIRouter(prefix="/rules", tags=["reconciliation"])


class RulesIn(BaseModel):
    yaml: CleanDocument = Field(
        min_length=1, max_length=256 * 1024, description="The whole rules spec as YAML."
    )
    reason: CleanText = Field(
        min_length=1, max_length=500, description="Why the rules change (kept in the audit log)."
    )


class RulesRollbackIn(BaseModel):
    version: int = Field(
        strict=True, ge=0, le=INT64_MAX, description="The version to restore; 0 is the default."
    )
    reason: CleanText = Field(min_length=1, max_length=500)


class RulesOut(ResponseModel):
    """The active rules: what runs record, where they came from, and the YAML itself."""

    spec_version: str = Field(description="What runs and matches record.")
    origin: str = Field(description="'database' (a saved version) or 'package' (the default).")
    version: int | None
    file: str
    sha256: str
    yaml: str


class RulesVersionOut(ResponseModel):
    version: int
    label: str
    author: str
    reason: str
    created_at: str
    sha256: str
    is_active: bool
    rolled_back_from: int | None


def _active_out(session: Session) -> RulesOut:
    rules = rule_specs.active(session)
    return RulesOut(
        spec_version=rules.label,
        origin=rules.origin,
        version=rules.version,
        file=rules.file,
        sha256=rules.sha256,
        yaml=rules.text,
    )


@router.get("", summary="The active matching rules (YAML) and the version runs record")
def get_rules(session: ReadSession, _: Viewer) -> RulesOut:
    return _active_out(session)


@router.get("/versions", summary="Every saved version of the matching rules, newest first")
def list_versions(session: ReadSession, _: Viewer) -> list[RulesVersionOut]:
    return [
        RulesVersionOut.model_validate(rule_specs.version_out(row))
        for row in rule_specs.history(session)
    ]


@router.put(
    "",
    summary="Save a new version of the matching rules (compiled first, audited)",
    responses=problem_responses(422),
)
def put_rules(body: RulesIn, principal: Admin, session: WriteSession) -> RulesOut:
    rule_specs.save(session, principal, body.yaml, body.reason)
    return _active_out(session)


@router.post(
    "/rollback",
    summary="Make an earlier version active again, as a new version (audited)",
    responses=problem_responses(404),
)
def rollback_rules(body: RulesRollbackIn, principal: Admin, session: WriteSession) -> RulesOut:
    try:
        rule_specs.rollback(session, principal, body.version, body.reason)
    except rule_specs.RuleVersionNotFound as exc:
        raise Problem(404, "Not found", str(exc)) from None
    return _active_out(session)
