"""The guided tour in the portal: the panel on the dashboard, the callout on the page a
step is about, and the forms that mark a step done, dismiss the tour or restart it.

Every signed-in user, viewers included, has a tour of their own: its forms change only the
caller's progress (the route-walk test lists them as self-service). Turning the tour on or
off for the whole installation is an administrator's. A step the user's role cannot do
says so instead of linking to a page they could not use.

Pages a step is about are rendered by other modules, several of them on the event loop,
so the callout is not rendered with them: ``tour.js`` asks ``POST /tour/here`` for it
once the page has loaded (which also records the visit) and puts it next to the element
the step is about.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy.orm import Session

from ledgerlink.identity.principal import Principal
from ledgerlink.tour import places, progress, steps
from ledgerlink.web.deps import Admin, DatabaseDep, ReadSession, Viewer, WriteSession
from ledgerlink.web.portal.rendering import render, render_error, templates

router = APIRouter()

#: base.html asks this (no database) whether a page may carry a callout at all.
templates.env.globals["tour_may_have_callout"] = steps.may_have_callout

NOTICES = {
    "restarted": "The tour starts again from its first step: it is on your dashboard.",
    "restarted-off": "Your tour starts again from its first step once an administrator "
    "turns the tour on for this installation.",
    "enabled": "The guided tour is on: every user sees it on their dashboard until they "
    "dismiss it.",
    "disabled": "The guided tour is off for every user.",
}


@dataclass(frozen=True)
class StepView:
    number: int
    key: str
    title: str
    see: str
    link: str | None  # None: the user's role cannot do this step
    note: str  # why there is no link, for such a user
    done: bool
    is_next: bool


@dataclass(frozen=True)
class ScenarioView:
    title: str
    summary: str
    steps: list[StepView]


@dataclass(frozen=True)
class Panel:
    scenarios: list[ScenarioView]
    done_count: int
    total: int
    finished: bool
    dismissed: bool
    enabled: bool


@dataclass(frozen=True)
class Callout:
    step: StepView
    scenario: str
    total: int
    highlight: str  # CSS selectors for tour.js: the element outlined,
    anchor: str  # and the one the callout goes after (before, when ``before``)
    before: bool
    back: StepView | None
    forward: StepView | None


def _role_note(step: steps.Step, principal: Principal) -> str:
    if principal.can(step.role):
        return ""
    return (
        f"{step.doing} needs the {step.role.value} role (you are a {principal.role.value}): "
        f"ask an {step.role.value} to show you, or mark it done."
    )


def _panel(tour: progress.TourState, where: places.Places, principal: Principal) -> Panel:
    number = 0
    up_next = tour.up_next(principal.role)
    scenarios = []
    for scenario in steps.SCENARIOS:
        views = []
        for step in scenario.steps:
            number += 1
            note = _role_note(step, principal)
            views.append(
                StepView(
                    number=number,
                    key=step.key,
                    title=step.title,
                    see=step.see,
                    link=None if note else where.links[step.key],
                    note=note,
                    done=step.key in tour.done,
                    is_next=step.key == up_next,
                )
            )
        scenarios.append(ScenarioView(scenario.title, scenario.summary, views))
    return Panel(
        scenarios=scenarios,
        done_count=tour.done_count,
        total=len(steps.STEPS),
        finished=tour.finished,
        dismissed=tour.dismissed,
        enabled=tour.enabled,
    )


def dashboard_panel(session: Session, principal: Principal) -> Panel | None:
    """The tour panel for the dashboard, or None when it does not show (the installation
    has it off, or the user dismissed it)."""
    tour = progress.state(session, principal.user_id)
    if not tour.showing:
        return None
    return _panel(tour, places.find(session), principal)


def _callout(
    tour: progress.TourState,
    where: places.Places,
    principal: Principal,
    step: steps.Step,
    page: steps.Page,
) -> Callout:
    flat = [view for s in _panel(tour, where, principal).scenarios for view in s.steps]
    index = next(i for i, view in enumerate(flat) if view.key == step.key)
    # Back and Next skip steps the user's role cannot open (they have no link).
    back = next((v for v in reversed(flat[:index]) if v.link), None)
    forward = next((v for v in flat[index + 1 :] if v.link), None)
    highlight, anchor = page.selectors(where.ids)
    return Callout(
        step=flat[index],
        scenario=steps.scenario_of(step.key).title,
        total=len(flat),
        highlight=highlight,
        anchor=anchor,
        before=page.before,
        back=back,
        forward=forward,
    )


def _local(path: str) -> str:
    """Where to go back to after a tour form: a path of this portal, else the dashboard
    (never another site: ``//host`` and ``/\\host`` are refused)."""
    if path.startswith("/") and not path.startswith(("//", "/\\")) and len(path) <= 2000:
        return path
    return "/"


@router.get("/tour")
def tour_page(
    request: Request, principal: Viewer, session: ReadSession, done: str = ""
) -> Response:
    return render(
        request,
        "tour.html",
        panel=_panel(progress.state(session, principal.user_id), places.find(session), principal),
        notice=NOTICES.get(done),
    )


@router.post("/tour/here")
def tour_here(
    request: Request,
    principal: Viewer,
    db: DatabaseDep,
    path: Annotated[str, Form(max_length=2000)],
) -> Response:
    """The callout for the page at ``path`` (with its query, where the callout's forms
    come back to; 204 when no step is about it or the tour is not showing). A step the
    user can do counts as done once they are on its page."""
    with db.read() as session:
        tour = progress.state(session, principal.user_id)
        if not tour.showing or principal.user_id is None:
            return Response(status_code=204)
        where = places.find(session)
    found = steps.page_for(path.split("?", 1)[0], where.links)
    if found is None:
        return Response(status_code=204)
    step, page = found
    if principal.can(step.role) and step.key not in tour.done:
        # a write only for a first visit: most callouts are read without the write lock
        with db.transaction() as session:
            progress.mark_done(session, principal.user_id, step.key)
        tour = replace(tour, done=tour.done | {step.key})
    callout = _callout(tour, where, principal, step, page)
    return render(request, "tour_callout.html", callout=callout, here=path)


@router.post("/tour/done")
def tour_step_done(
    request: Request,
    principal: Viewer,
    session: WriteSession,
    step: Annotated[str, Form(max_length=64)],
    next: Annotated[str, Form(max_length=2000)] = "/",
) -> Response:
    if principal.user_id is not None:
        try:
            progress.mark_done(session, principal.user_id, step)
        except ValueError as exc:
            return render_error(request, 422, str(exc))
    return RedirectResponse(_local(next), status_code=303)


@router.post("/tour/dismiss")
def tour_dismiss(
    principal: Viewer,
    session: WriteSession,
    next: Annotated[str, Form(max_length=2000)] = "/",
) -> Response:
    if principal.user_id is not None:
        progress.dismiss(session, principal.user_id)
    return RedirectResponse(_local(next), status_code=303)


@router.post("/tour/restart")
def tour_restart(principal: Viewer, session: WriteSession) -> Response:
    if principal.user_id is not None:
        progress.restart(session, principal.user_id)
    if progress.is_enabled(session):
        return RedirectResponse("/", status_code=303)
    return RedirectResponse("/tour?done=restarted-off", status_code=303)


@router.post("/tour/installation")
def tour_installation(
    principal: Admin,
    session: WriteSession,
    enabled: Annotated[bool, Form()] = False,
) -> Response:
    progress.set_enabled(session, principal, enabled)
    return RedirectResponse(f"/tour?done={'enabled' if enabled else 'disabled'}", 303)
