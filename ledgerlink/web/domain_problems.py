"""What each domain or upstream error means over HTTP, said once.

Routes raise the errors of their use cases (a member not found, a link refused, an
upstream that failed...) and do not translate them; ``web/app.py`` registers one handler
for every class here, which answers the API with the problem document below and the
portal with its error page (:func:`page_error`). Dispatch follows the class hierarchy,
so ``LinkFailed`` is answered as a ``LinkError`` and ``RateLimited`` as an
``UpstreamError``.
"""

from __future__ import annotations

from functools import singledispatch
from typing import cast

from ledgerlink.audit_jobs import FullCheckRefused
from ledgerlink.connectors.errors import RateLimited, UpstreamError
from ledgerlink.domain.members import MemberInvalid
from ledgerlink.identity.users import AccountError, AccountNotFound
from ledgerlink.mapping.errors import SpecError
from ledgerlink.members import csv_io, linking
from ledgerlink.members.registry import MemberNotFound, RegistryConflict
from ledgerlink.members.search import SearchInvalid
from ledgerlink.payments.charge_outcomes import ChargeRefused
from ledgerlink.payments.inbox import EventRefused
from ledgerlink.payments.problems import PaymentProblem
from ledgerlink.payments.resolutions import ActionRefused
from ledgerlink.recon.problems import RulesSpecError
from ledgerlink.store import audit_checks
from ledgerlink.store.mapping_repo import PreviewUnavailable, UnknownMapping
from ledgerlink.sync.runs import SyncError, SyncRunNotFound
from ledgerlink.web.problems import Problem, field_problem


@singledispatch
def problem_for(exc: Exception) -> Problem:
    """The problem document for a domain or upstream error (registered types only)."""
    raise TypeError(f"no problem is defined for {type(exc).__name__}")


def handled_types() -> list[type[Exception]]:
    """Every error class with a translation, for ``web/app.py`` to register."""
    return [cast(type[Exception], cls) for cls in problem_for.registry if cls is not object]


@problem_for.register
def _upstream(exc: UpstreamError) -> Problem:
    problem = Problem(502, f"{exc.system_name} unavailable", exc.message, kind="upstream")
    if isinstance(exc, RateLimited) and exc.retry_after:
        problem.headers = {"Retry-After": str(int(exc.retry_after))}
    return problem


@problem_for.register
def _not_found(
    exc: MemberNotFound | UnknownMapping | SyncRunNotFound | AccountNotFound,
) -> Problem:
    return Problem(404, "Not found", str(exc))


@problem_for.register
def _member_invalid(exc: MemberInvalid) -> Problem:
    return Problem(
        422,
        "Invalid member",
        str(exc),
        kind="validation",
        errors=[p.as_dict() for p in exc.problems],
    )


@problem_for.register
def _registry_conflict(exc: RegistryConflict) -> Problem:
    return field_problem(exc.field, str(exc), status=409)


@problem_for.register
def _search_invalid(exc: SearchInvalid) -> Problem:
    return field_problem(exc.field, str(exc))


@problem_for.register
def _link(exc: linking.LinkError) -> Problem:
    if isinstance(exc, linking.LikelyDuplicates):
        return Problem(
            exc.status,
            "Likely duplicate",
            exc.message,
            kind="likely-duplicate",
            errors=[
                {
                    "field": "customer_id",
                    "message": ", ".join(c.reasons),
                    "customer_id": c.customer.id,
                }
                for c in exc.candidates
            ],
        )
    errors = [{"field": exc.field, "message": exc.message}] if exc.field else []
    return Problem(exc.status, "Linking refused", exc.message, kind="member-link", errors=errors)


@problem_for.register
def _csv_refused(exc: csv_io.FileRefused) -> Problem:
    return Problem(
        422,
        "File refused",
        f"Nothing was imported: {exc}",
        kind="csv-import",
        errors=[{"field": e.field, "message": e.reason, "line": str(e.line)} for e in exc.errors],
    )


@problem_for.register
def _spec(exc: SpecError) -> Problem:
    errors = [
        {"field": p.field, "message": p.message, "file": p.file, "line": p.line}
        for p in exc.problems
    ]
    return Problem(
        422,
        "Invalid mapping spec",
        str(exc),
        kind="mapping-spec",
        errors=cast(list[dict[str, str]], errors),
    )


@problem_for.register
def _rules_spec(exc: RulesSpecError) -> Problem:
    problem = _spec(exc)
    problem.title = "Invalid reconciliation rules spec"
    problem.kind = "recon-rules-spec"
    return problem


@problem_for.register
def _preview_unavailable(exc: PreviewUnavailable) -> Problem:
    return Problem(409, "No recent records", str(exc))


@problem_for.register
def _sync(exc: SyncError) -> Problem:
    if isinstance(exc, SyncRunNotFound):
        return Problem(404, "Not found", str(exc))
    return Problem(409, "Sync refused", str(exc), kind="sync")


@problem_for.register
def _account(exc: AccountError) -> Problem:
    return field_problem(exc.field, exc.message)


@problem_for.register
def _action_refused(exc: ActionRefused) -> Problem:
    return field_problem(exc.field, exc.message, status=404 if exc.missing else 422)


@problem_for.register
def _event_refused(exc: EventRefused) -> Problem:
    return field_problem(exc.field, exc.message)


@problem_for.register
def _charge_refused(exc: ChargeRefused) -> Problem:
    return field_problem(exc.field, exc.message)


@problem_for.register
def _payment_problem(exc: PaymentProblem) -> Problem:
    return Problem(409, "Not charged", f"{exc.reason}. {exc.fix}", kind="payment")


@problem_for.register
def _full_check_refused(exc: FullCheckRefused) -> Problem:
    found = exc.refusal
    retry = {"Retry-After": str(int(audit_checks.FULL_PAUSE.total_seconds()))}
    return Problem(found.status, found.title, found.detail, headers=retry)


def page_error(exc: Exception) -> tuple[int, str]:
    """The status and the sentence the portal's error page shows for a domain error: the
    problem's, except where a person needs other words than a script."""
    if isinstance(exc, UpstreamError):
        return 502, f"{exc.system_name}: {exc.message}"
    if isinstance(exc, ActionRefused):
        return 422, f"Nothing was done: {exc.message}"
    if isinstance(exc, SearchInvalid | RegistryConflict | SyncError):
        found = problem_for(exc)
        return found.status, str(exc)
    if isinstance(exc, linking.LinkError):
        return exc.status, exc.message
    found = problem_for(exc)
    return found.status, found.detail or found.title
