"""Card on file: finance makes a card-capture link for a member whose customer has no
PayTrace profile; the customer types the card into PayTrace's hosted fields (played here by
the sandbox's tokenizer, as the iframe posts it); the profile is created with that card and
linked to the member, so a stored-card charge of the member's invoice works — against both
ledger kinds. A pay link never opens as a capture link, nor the other way round."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from ledgerlink import connections
from ledgerlink.connectors.factory import gateway_for, ledger_for
from ledgerlink.identity.roles import Role
from ledgerlink.paylinks import tokens
from ledgerlink.sandbox.faults import FaultInjector, FaultPlan
from ledgerlink.settings import Settings
from ledgerlink.store.mapping_repo import MappingRepository
from ledgerlink.store.member_models import MemberLinkRow, MemberRow
from ledgerlink.store.models import AuditEntry, Connection
from ledgerlink.store.sync_models import SyncRecord, SyncRun
from ledgerlink.sync import runs
from tests.support.level_three import charge
from tests.support.pay_links import (
    hosted_token,
    make_link,
    open_balance,
    open_page,
    sales_for,
    submit,
)
from tests.support.payments import ME, PaymentsWorld, sage500_world, sbc_world
from tests.support.smtp import smtp_server
from tests.support.web import make_user, sign_in

#: People 3, 4, 7 and 8 have no PayTrace profile in the seeded sandboxes (1, 2, 5, 6 have).
WITHOUT_PROFILE = (3, 4, 7, 8)


@pytest.fixture(params=["sage500", "sbc"])
def world(
    request: pytest.FixtureRequest, settings: Settings, tmp_path: Path
) -> Iterator[PaymentsWorld]:
    made = sage500_world if request.param == "sage500" else sbc_world
    with made(settings, tmp_path, people=8) as opened:
        yield opened


def _member_with_invoice(world: PaymentsWorld, client: Any) -> tuple[str, str]:
    """A member with no PayTrace profile whose ledger customer has an open invoice, linked
    to that customer (Sage 500: through *Link existing*, as finance does); (member, invoice)."""
    for person in WITHOUT_PROFILE:
        number = f"M{person:05d}"
        if world.erp is not None:
            found = [str(row["TranID"]) for row in world.open_invoices(person)]
            if not found:
                continue

            async def customer_of(invoice: str) -> str:
                async with world.ledger() as ledger:
                    return str((await ledger.find_invoice(invoice)).customer_id)

            customer = asyncio.run(customer_of(found[0]))
            linked = client.post(
                f"/api/v1/members/{number}/links",
                json={"connection_id": world.ledger_id, "customer_id": customer},
                headers=_auth(world),
            )
            assert linked.status_code == 200, linked.text
            return number, found[0]
        invoices = [str(i.number) for i in world.sbc_invoices(world.linked_customer(number))]
        if invoices:
            return number, invoices[0]
    raise AssertionError("no member without a PayTrace profile has an open invoice")


def _auth(world: PaymentsWorld, role: Role = Role.OPERATOR) -> dict[str, str]:
    """A bearer header for a user of ``role`` (one per world; not operator@example.org,
    which the stored-card charge helper makes)."""
    key = f"ledgerlink-{role.value}"
    if key not in world.tokens:
        email = f"finance-{role.value}@example.org"
        world.tokens[key] = make_user(world.runtime.db, role, email).token
    return {"Authorization": f"Bearer {world.tokens[key]}"}


def _capture_link(world: PaymentsWorld, client: Any, member: str, **extra: Any) -> Any:
    return client.post(
        f"/api/v1/members/{member}/card-capture-links", json=extra, headers=_auth(world)
    )


def _paytrace_link(world: PaymentsWorld, member: str) -> str | None:
    with world.runtime.db.read() as session:
        return session.scalar(
            select(MemberLinkRow.customer_id)
            .join(MemberRow, MemberRow.id == MemberLinkRow.member_id)
            .where(
                MemberRow.number == member,
                MemberLinkRow.connection_id == world.paytrace_id,
                MemberLinkRow.unlinked_at.is_(None),
            )
        )


def test_a_card_saved_by_link_creates_the_profile_and_the_stored_card_charge_works(
    world: PaymentsWorld, client
) -> None:  # type: ignore[no-untyped-def]
    member, invoice = _member_with_invoice(world, client)
    profile = "C" + member[1:]
    assert not world.paytrace("/v1/customer/export", {"customer_id": profile}).get("customers")
    made = _capture_link(world, client, member)
    assert made.status_code == 201, made.text
    assert made.json()["has_profile"] is False
    path = made.json()["path"]
    # no public address configured: a whole address on the one finance reached us at
    assert made.json()["url"] == f"{client.base_url}{path}"

    page = open_page(client, path)
    assert page.status == 200
    assert "Save a card on file" in page.text
    consent = re.search(r'data-testid="consent">I authorise (.+?) to charge this card', page.text)
    assert consent is not None
    assert consent.group(1) in page.text.split('data-testid="organisation">', 1)[1]
    assert f'<script src="{world.paytrace_url}/js/protect.min.js"' in page.text
    assert "frame-src " + world.paytrace_url in page.csp

    card = hosted_token(world, page.client_key)
    refused = submit(client, path, page, card)  # the consent left unticked
    assert refused.status_code == 422
    assert 'data-testid="error-consent"' in refused.text
    assert not world.paytrace("/v1/customer/export", {"customer_id": profile}).get("customers")

    saved = submit(client, path, page, card, consent="1")
    assert saved.status_code == 303, saved.text
    confirmation = client.get(saved.headers["location"])
    assert confirmation.status_code == 200
    assert "xxxxxxxxxxxx5439" in confirmation.text
    assert "4012000098765439" not in confirmation.text

    stored = world.paytrace("/v1/customer/export", {"customer_id": profile})["customers"]
    assert stored[0]["credit_card"]["masked_number"] == "xxxxxxxxxxxx5439"
    assert _paytrace_link(world, member) == profile
    assert sales_for(world, invoice) == []  # saving a card charges nothing
    with world.runtime.db.read() as session:
        actors = dict(
            session.execute(
                select(AuditEntry.action, AuditEntry.actor).where(
                    AuditEntry.action.like("payment.card_capture%")
                )
            ).all()
        )
    assert actors["payment.card_capture.saved"] == "payer (card link)"

    charged = charge(world, client, invoice, "5.00")
    assert charged["status"] == "approved", charged
    assert [s["customer_id"] for s in sales_for(world, invoice)] == [profile]


def test_a_used_link_saves_nothing_more_and_links_do_not_cross(
    world: PaymentsWorld, client
) -> None:  # type: ignore[no-untyped-def]
    member, invoice = _member_with_invoice(world, client)
    path = _capture_link(world, client, member).json()["path"]
    pay_made = make_link(client, _auth(world)["Authorization"].removeprefix("Bearer "), invoice)
    pay_path = pay_made.json()["path"]

    # a pay link's token on the capture page, and a capture link's on the pay page
    crossed = open_page(client, "/card/" + pay_path.removeprefix("/pay/"))
    assert crossed.status == 400
    assert "cannot be used" in crossed.text
    assert open_page(client, "/pay/" + path.removeprefix("/card/")).status == 400
    page = open_page(client, path)
    card = hosted_token(world, page.client_key)
    assert (
        submit(client, "/pay/" + path.removeprefix("/card/"), page, card, amount="1.00")
    ).status_code == 400
    assert sales_for(world, invoice) == []
    assert submit(client, "/card/" + pay_path.removeprefix("/pay/"), page, card).status_code == 400

    token = path.removeprefix("/card/")
    changed = "/card/" + token[:-3] + ("AAA" if not token.endswith("AAA") else "BBB")
    assert submit(client, changed, page, card, consent="1").status_code == 400
    claims = tokens.verify(world.runtime.vault, token, tokens.CARD)
    old = replace(claims, expires_at=datetime.now(UTC) - timedelta(minutes=1))
    expired = "/card/" + tokens.sign(world.runtime.vault, old)
    assert open_page(client, expired).status == 410
    assert submit(client, expired, page, card, consent="1").status_code == 410
    profile = "C" + member[1:]
    assert not world.paytrace("/v1/customer/export", {"customer_id": profile}).get("customers")

    assert submit(client, path, page, card, consent="1").status_code == 303
    reused = open_page(client, path)
    assert reused.status == 409
    assert "used already" in reused.text
    again = open_page(client, pay_path)  # the pay page still works for its own link
    assert again.status == 200
    other = hosted_token(world, again.client_key, number="5454545454545454")
    resent = submit(client, path, page, other, consent="1")
    assert resent.status_code == 409
    stored = world.paytrace("/v1/customer/export", {"customer_id": profile})["customers"]
    assert stored[0]["credit_card"]["masked_number"] == "xxxxxxxxxxxx5439"  # unchanged
    assert open_balance(world, invoice) > 0


@pytest.mark.parametrize("kind", ["sage500", "sbc"])
def test_two_submits_of_one_card_link_at_once_save_one_card(
    kind: str, settings: Settings, tmp_path: Path, client
) -> None:  # type: ignore[no-untyped-def]
    """Two tabs (or a double click) send one card link's form at the same moment, each with
    its own card. PayTrace answers slowly, so both are inside the window between "is the
    link used?" and "the card is saved": one stores its card, the other is told the link is
    used, and the profile holds the first card only."""
    faults = FaultInjector()
    made = sage500_world if kind == "sage500" else sbc_world
    with made(settings, tmp_path, people=8, paytrace_faults=faults) as world:
        member, _ = _member_with_invoice(world, client)
        path = _capture_link(world, client, member).json()["path"]
        page = open_page(client, path)
        cards = [
            hosted_token(world, page.client_key),
            hosted_token(world, page.client_key, number="5454545454545454"),
        ]
        faults.replace(FaultPlan(latency_ms=300))
        with ThreadPoolExecutor(2) as pool:
            answers = list(
                pool.map(lambda card: submit(client, path, page, card, consent="1"), cards)
            )
        faults.replace(FaultPlan())

        assert sorted(a.status_code for a in answers) == [303, 409], [a.text for a in answers]
        [refused] = [a for a in answers if a.status_code == 409]
        assert "used" in refused.text
        winner = cards[[a.status_code for a in answers].index(303)]
        masked = "xxxxxxxxxxxx5439" if winner is cards[0] else "xxxxxxxxxxxx5454"
        profile = "C" + member[1:]
        stored = world.paytrace("/v1/customer/export", {"customer_id": profile})["customers"]
        assert [c["credit_card"]["masked_number"] for c in stored] == [masked]
        with world.runtime.db.read() as session:
            saves = session.scalars(
                select(AuditEntry.action).where(AuditEntry.action == "payment.card_capture.saved")
            ).all()
        assert len(saves) == 1
        assert masked in client.get(path + "/saved").text


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_viewers_cannot_make_capture_links_and_unlinked_members_are_named(
    settings: Settings, tmp_path: Path, client
) -> None:  # type: ignore[no-untyped-def]
    with sage500_world(settings, tmp_path, people=2) as world:
        viewer = client.post(
            "/api/v1/members/M00001/card-capture-links",
            json={},
            headers=_auth(world, Role.VIEWER),
        )
        assert viewer.status_code == 403
        unlinked = _capture_link(world, client, "M00001")  # no Sage 500 customer linked
        assert unlinked.status_code == 422
        problem = unlinked.json()["errors"][0]
        assert problem["field"] == "member"
        assert "Create Account" in problem["message"]


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_finance_asks_for_a_card_on_file_from_the_members_page_and_e_mails_it(
    settings: Settings, tmp_path: Path, client
) -> None:  # type: ignore[no-untyped-def]
    with sbc_world(settings, tmp_path, people=4) as world, smtp_server() as (port, inbox):
        with world.runtime.db.transaction() as session:
            mail = connections.create(
                session,
                world.runtime.vault,
                ME,
                kind="smtp",
                name="E-mail",
                settings={
                    "host": "127.0.0.1",
                    "port": port,
                    "security": "none",
                    "from_address": "finance@example.org",
                    "recipients": ["finance@example.org"],
                },
                secrets={},
            )
            connections.update(session, world.runtime.vault, ME, mail, is_active=True)
        world.runtime.settings.base_url = "https://pay.example.org"
        make_user(world.runtime.db, Role.OPERATOR)
        csrf = sign_in(client, "operator@example.org")

        member = client.get("/members/M00003")
        assert 'href="/members/M00003/card-capture-link"' in member.text  # linked in SBC
        form = client.get("/members/M00003/card-capture-link")
        assert form.status_code == 200
        wrong = client.post(
            "/members/M00003/card-capture-link",
            data={"csrftoken": csrf, "expires_in_days": "7", "send_email": "1", "email": "x@"},
        )
        assert wrong.status_code == 422
        assert 'data-testid="error-email"' in wrong.text
        assert 'value="x@"' in wrong.text  # what was typed stays in the form
        made = client.post(
            "/members/M00003/card-capture-link",
            data={"csrftoken": csrf, "expires_in_days": "7", "send_email": "1"},
        )
        assert made.status_code == 200, made.text
        assert 'data-testid="capture-link-made"' in made.text
        url = re.search(r'value="(https://pay\.example\.org/card/[^"]+)"', made.text)
        assert url is not None
        assert url.group(1) in inbox.body(0)
        assert "Nothing is charged now" in inbox.body(0)
        page = open_page(client, url.group(1).removeprefix("https://pay.example.org"))
        assert page.status == 200
        assert "Save a card on file" in page.text


def _sync_profiles(world: PaymentsWorld) -> tuple[SyncRun, list[SyncRecord]]:
    """One run of the *PayTrace customer profiles* data set; the run and its records."""
    runtime = world.runtime
    with runtime.db.transaction() as session:
        run_id = runs.start(session, None, ME, world.ledger_id, ["card_profiles"]).id
        connection = session.get(Connection, world.ledger_id)
        session.expunge(connection)

    async def go() -> SyncRun:
        async with ledger_for(runtime, connection) as ledger:  # type: ignore[arg-type, attr-defined]
            return await runs.execute(
                runtime.db,
                run_id,
                ledger,
                ME,
                open_gateway=lambda c: gateway_for(runtime, c),
                mappings=MappingRepository(None),
            )

    run = asyncio.run(go())
    with runtime.db.read() as session:
        records = list(session.scalars(select(SyncRecord).where(SyncRecord.run_id == run_id)))
        for record in records:
            session.expunge(record)
    return run, records


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_the_profile_sync_names_members_without_a_profile_and_the_way_forward(
    settings: Settings, tmp_path: Path, client
) -> None:  # type: ignore[no-untyped-def]
    with sbc_world(settings, tmp_path, people=4) as world:
        first, records = _sync_profiles(world)
        assert first.status == "finished", first.counts
        missing = {r.record_key: r for r in records if r.status == "skipped"}
        assert sorted(missing) == ["M00003", "M00004"]  # no PayTrace profile in the sandbox
        assert "no PayTrace profile" in missing["M00003"].message
        assert "card-capture link from the member's page" in missing["M00003"].fix
        assert missing["M00003"].member_id is not None
        assert [r for r in records if r.status == "failed"] == []
        assert first.counts["profiles_missing"] == 2
        again, quiet = _sync_profiles(world)
        assert quiet == []  # told once
        assert again.counts["profiles_missing"] == 2

        path = _capture_link(world, client, "M00003").json()["path"]
        page = open_page(client, path)
        saved = submit(client, path, page, hosted_token(world, page.client_key), consent="1")
        assert saved.status_code == 303
        paired, records = _sync_profiles(world)
        assert paired.counts["profiles_missing"] == 1  # M00003's new profile is synced now
        assert paired.total == first.total + 1
