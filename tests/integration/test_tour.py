"""The guided tour (issue 19, "a guided first run"): on the dashboard at a demo user's
first sign-in, each step linking to a page the user's role can use (or saying which role
it needs), a step done once its page is visited, dismissed for good until restarted, its
forms refused without the CSRF token, and off on an installation that is not the demo."""

from __future__ import annotations

import re
from html import unescape

from fastapi.testclient import TestClient

from ledgerlink import demo
from ledgerlink.identity.roles import Role
from ledgerlink.store.db import Database
from tests.support.tour import demo_like
from tests.support.web import make_user, sign_in

ADMIN, OPERATOR, VIEWER = (email for email, _, _ in demo.USERS)
STEP_LINK = re.compile(r'<a href="([^"]+)" data-testid="tour-step-link">([^<]+)</a>')


def _demo(db: Database) -> dict[str, int]:
    world = demo_like(db)
    return {"sbc": world.sbc, "run": world.bulk_run, "posted": world.posted, "scope": world.scope}


def _sign_in_as(client: TestClient, email: str) -> str:
    client.cookies.clear()
    return sign_in(client, email, demo.PASSWORD)


def _panel(client: TestClient) -> str:
    """The dashboard's tour panel ('' when it is not there)."""
    html = client.get("/").text
    found = re.search(r'<section class="tour-panel".*?</section>', html, re.S)
    return found.group(0) if found else ""


def _done(panel: str) -> set[str]:
    """The keys of the steps the panel shows as done."""
    steps = re.findall(r'data-step="([^"]+)"(.*?)</li>', panel, re.S)
    return {key for key, body in steps if '<span class="badge ok">done</span>' in body}


def _here(client: TestClient, token: str, path: str) -> tuple[int, str]:
    answer = client.post("/tour/here", data={"path": path, "csrftoken": token})
    return answer.status_code, answer.text


def test_a_demo_user_sees_the_tour_on_the_dashboard_at_first_sign_in(client, db) -> None:  # type: ignore[no-untyped-def]
    ids = _demo(db)
    _sign_in_as(client, ADMIN)
    panel = _panel(client)

    assert "Guided tour" in panel
    assert "0 of 7 steps done" in panel
    links = {title: unescape(href) for href, title in STEP_LINK.findall(panel)}
    assert links == {
        "Connect Sage Business Cloud": f"/connections/{ids['sbc']}",
        "Find members without an account": f"/members?without_account=1&connection_id={ids['sbc']}",
        "Create and link customer accounts": f"/members/bulk/{ids['run']}",
        "Sync with progress": "/sync",
        "A card payment posted": f"/payments/events/{ids['posted']}",
        "Resolve an exception": "/payments/exceptions",
        "Reconcile with the bank": f"/recon/{ids['scope']}",
    }
    assert 'aria-current="step"' in panel  # the first step is the one up next
    assert "Dismiss tour" in panel


def test_each_step_links_to_a_page_its_role_can_use_and_its_callout_is_there(client, db) -> None:  # type: ignore[no-untyped-def]
    _demo(db)
    expected_links = {ADMIN: 7, OPERATOR: 6, VIEWER: 3}
    for email, count in expected_links.items():
        token = _sign_in_as(client, email)
        panel = _panel(client)
        links = [unescape(href) for href, _ in STEP_LINK.findall(panel)]
        assert len(links) == count, (email, links)
        assert panel.count('data-testid="tour-role-note"') == 7 - count, email
        for link in links:
            assert client.get(link).status_code == 200, (email, link)
            status, callout = _here(client, token, link.split("?")[0])
            assert status == 200, (email, link)
            assert 'data-testid="tour-callout"' in callout, (email, link)


def test_a_viewer_is_told_which_role_a_step_needs_instead_of_a_link(client, db) -> None:  # type: ignore[no-untyped-def]
    _demo(db)
    token = _sign_in_as(client, VIEWER)
    panel = unescape(_panel(client))

    assert "Starting a sync needs the operator role (you are a viewer)" in panel
    assert "Connecting a ledger needs the admin role" in panel
    assert 'href="/sync" data-testid="tour-step-link"' not in panel
    # up next is the first step a viewer can do, not one they would need help with
    assert re.search(r'data-step="find-members" aria-current="step"', panel)
    # on the page itself (the viewer may read it) the callout says so too, and Next skips
    # the steps the viewer cannot do
    status, callout = _here(client, token, "/sync")
    assert status == 200
    assert "Starting a sync needs the operator role (you are a viewer)" in unescape(callout)
    assert "Next: A card payment posted" in callout
    assert "0 of 7 steps done" in _panel(client)  # visiting it did not do it


def test_visiting_a_steps_page_or_marking_it_done_counts_it_done(client, db) -> None:  # type: ignore[no-untyped-def]
    _demo(db)
    token = _sign_in_as(client, OPERATOR)
    assert _here(client, token, "/sync")[0] == 200
    answer = client.post(
        "/tour/done",
        data={"step": "reconciliation", "next": "/payments", "csrftoken": token},
        follow_redirects=False,
    )
    assert (answer.status_code, answer.headers["location"]) == (303, "/payments")

    panel = _panel(client)
    assert "2 of 7 steps done" in panel
    assert _done(panel) == {"sync", "reconciliation"}
    # a step that does not exist is refused, and a form never sends the user off-site
    assert client.post("/tour/done", data={"step": "nope", "csrftoken": token}).status_code == 422
    away = client.post(
        "/tour/done",
        data={"step": "sync", "next": "//evil.example/", "csrftoken": token},
        follow_redirects=False,
    )
    assert away.headers["location"] == "/"


def test_dismissed_stays_dismissed_across_sign_ins_until_restarted(client, db) -> None:  # type: ignore[no-untyped-def]
    _demo(db)
    token = _sign_in_as(client, VIEWER)
    status, callout = _here(client, token, "/members?without_account=1")
    assert status == 200
    assert '<input type="hidden" name="next" value="/members?without_account=1">' in callout
    answer = client.post(
        "/tour/dismiss",
        data={"next": "/members?without_account=1", "csrftoken": token},
        follow_redirects=False,
    )
    assert (answer.status_code, answer.headers["location"]) == (303, "/members?without_account=1")
    assert _panel(client) == ""
    assert _here(client, token, "/payments")[0] == 204  # no callout either

    token = _sign_in_as(client, VIEWER)
    assert _panel(client) == ""
    assert "You dismissed the tour" in client.get("/tour").text
    assert 'action="/tour/restart"' in client.get("/settings").text

    assert client.post("/tour/restart", data={"csrftoken": token}).status_code == 200
    assert "0 of 7 steps done" in _panel(client)
    _sign_in_as(client, ADMIN)  # another user's tour was never dismissed
    assert _panel(client) != ""


def test_tour_forms_without_the_csrf_token_are_refused(client, db) -> None:  # type: ignore[no-untyped-def]
    _demo(db)
    _sign_in_as(client, VIEWER)
    for path, data in (
        ("/tour/dismiss", {}),
        ("/tour/done", {"step": "sync"}),
        ("/tour/restart", {}),
        ("/tour/here", {"path": "/sync"}),
        ("/tour/installation", {"enabled": "false"}),
    ):
        assert client.post(path, data=data).status_code == 403, path
    assert "0 of 7 steps done" in _panel(client)


def test_outside_the_demo_the_tour_is_off_until_an_administrator_turns_it_on(client, db) -> None:  # type: ignore[no-untyped-def]
    admin = make_user(db, Role.ADMIN)
    viewer = make_user(db, Role.VIEWER)
    token = sign_in(client, admin.email)
    assert _panel(client) == ""
    assert _here(client, token, "/sync")[0] == 204
    assert "The tour is off for this installation" in client.get("/tour").text

    answer = client.post("/tour/installation", data={"enabled": "true", "csrftoken": token})
    assert "The guided tour is on" in answer.text
    assert "0 of 7 steps done" in _panel(client)

    client.cookies.clear()
    sign_in(client, viewer.email)
    assert "0 of 7 steps done" in _panel(client)  # on for every user
