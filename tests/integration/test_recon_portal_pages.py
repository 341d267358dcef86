"""The Reconciliation page: summary and breaks per period, a refused statement shown with
its line and reason (nothing kept), a break explained from its form, the export."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient

from ledgerlink.identity.roles import Role
from ledgerlink.store.db import Database
from tests.support.recon import OFX, seed_scope
from tests.support.web import make_user, sign_in


def test_the_page_shows_breaks_refuses_a_bad_file_and_explains_a_break(
    client: TestClient, db: Database
) -> None:
    scope_id = seed_scope(db)
    operator = make_user(db, Role.OPERATOR)
    csrf = sign_in(client, operator.email)
    landing = client.get("/recon", follow_redirects=False)
    assert landing.status_code == 303
    assert landing.headers["location"] == f"/recon/{scope_id}"
    ran = client.post(
        f"/recon/{scope_id}/run",
        data={"csrftoken": csrf, "period": "2026-11"},
        follow_redirects=True,
    )
    assert ran.status_code == 200
    assert "Run 1:" in ran.text
    broken = OFX.replace(b"<TRNAMT>500.00", b"<TRNAMT>five hundred")
    refused = client.post(
        f"/recon/{scope_id}/statements",
        data={"csrftoken": csrf, "period": "2026-11"},
        files={"statement": ("bad.ofx", broken, "application/x-ofx")},
        follow_redirects=True,
    )
    assert "bad.ofx was not imported (nothing of it was kept)" in refused.text
    assert "five hundred" in refused.text
    assert "No statement imported yet." in refused.text
    page = client.get(f"/recon/{scope_id}?period=2026-11")
    assert 'data-type="missing_receipt"' in page.text
    explained = client.post(
        f"/recon/{scope_id}/breaks/missing_receipt:5002",
        data={"csrftoken": csrf, "period": "2026-11", "action": "explain", "reason": "cash sale"},
        follow_redirects=True,
    )
    assert "is explained: cash sale" in explained.text
    detail = client.get(f"/recon/{scope_id}/breaks/missing_receipt:5002")
    assert "explained" in detail.text
    assert "cash sale" in detail.text
    exported = client.get(f"/recon/{scope_id}/export?period=2026-11&status=all&format=csv")
    assert "missing_receipt:5002" in exported.text


def test_the_rules_a_run_used_are_named_in_words_not_as_a_version_id(
    client: TestClient, db: Database
) -> None:
    scope_id = seed_scope(db)
    operator = make_user(db, Role.OPERATOR)
    csrf = sign_in(client, operator.email)
    client.post(f"/recon/{scope_id}/run", data={"csrftoken": csrf, "period": "2026-11"})
    page = client.get(f"/recon/{scope_id}?period=2026-11").text
    shown = re.sub(r"<[^>]+>|title=\"[^\"]*\"", " ", page)  # the text a person reads
    assert "recon_rules@" not in shown
    assert re.search(r"rules: shipped version \([0-9a-f]{7}\)", shown)
    assert re.search(r'title="recon_rules@package:[0-9a-f]+"', page)  # the exact id at hand
