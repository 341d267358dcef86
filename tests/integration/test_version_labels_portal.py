"""Mapping versions on the mapping and payment pages read as words ("shipped version
(28c8342)", "v1 saved by …"); the exact version id stays in the title."""

from __future__ import annotations

import re
from pathlib import Path

from ledgerlink.identity.roles import Role
from ledgerlink.settings import Settings
from tests.support.payments import profiles, sage500_world
from tests.support.web import make_user, sign_in

SPEC = "payment_status"


def test_the_mappings_pages_name_versions_in_words_and_keep_the_id_in_the_title(client, db) -> None:  # type: ignore[no-untyped-def]
    admin = make_user(db, Role.ADMIN)
    sign_in(client, admin.email)
    listed = client.get("/settings/mappings").text
    labels = re.findall(r'<span title="([^"]+)" data-testid="version-label">([^<]+)<', listed)
    assert labels
    for ref, text in labels:
        assert re.fullmatch(r"shipped version \([0-9a-f]{7}\)", text), text
        assert "@package:" in ref
    assert "@package:" not in re.sub(r'title="[^"]*"', "", listed)

    headers = {"Authorization": f"Bearer {admin.token}"}
    yaml = client.get(f"/api/v1/mappings/{SPEC}", headers=headers).json()["yaml"]
    saved = client.put(
        f"/api/v1/mappings/{SPEC}", json={"yaml": yaml, "comment": "same"}, headers=headers
    )
    assert saved.status_code == 200, saved.text
    page = client.get(f"/settings/mappings/{SPEC}").text
    active = re.search(r'data-testid="active-version" title="([^"]+)">([^<]+)<', page)
    assert active is not None
    assert active.groups() == (f"{SPEC}@v1", f"v1 saved by {admin.email}")


def test_a_posting_names_its_mapping_version_in_words(
    settings: Settings, tmp_path: Path, client
) -> None:  # type: ignore[no-untyped-def]
    with sage500_world(settings, tmp_path, people=2) as world:
        customer = profiles(world)[0]
        invoice = world.open_invoices(int(customer[1:]))[0]["TranID"]
        sale = world.pay(customer, "20.00", invoice)
        world.poll()
        world.process()
        [posting] = world.postings()
        assert "@package:" in posting.mapping_version
        sign_in(client, make_user(world.runtime.db, Role.VIEWER).email)
        page = client.get(f"/payments/events/{world.event(sale).id}").text
    shown = re.search(r'title="([^"]+)" data-testid="posting-mapping-version">([^<]+)<', page)
    assert shown is not None
    assert shown.group(1) == posting.mapping_version
    assert re.fullmatch(r"shipped version \([0-9a-f]{7}\)", shown.group(2))
    assert "@package:" not in re.sub(r'title="[^"]*"', "", page)
