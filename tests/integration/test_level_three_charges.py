"""Level 3 on a stored-card charge: after PayTrace approves the sale, the invoice's lines go
to PayTrace as Visa or MasterCard Level 3 data (commodity codes from the PayTrace
connection's table); lines that do not add up, or a gateway that refuses, never stop the
sale from posting, and the reason is shown in words naming the line or field. Through the
PayTrace sandbox and each ledger's sandbox (Sage 500, SBC) over real connections."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from bs4 import BeautifulSoup

from ledgerlink.identity.roles import Role
from ledgerlink.settings import Settings
from tests.support.level_three import (
    GOOD_LINES,
    GOOD_TOTAL,
    Line,
    charge,
    profile_of_brand,
    recorded,
    sage500_invoice_with_lines,
    sbc_invoice_with_lines,
    set_paytrace_settings,
)
from tests.support.payments import PaymentsWorld, sage500_world, sbc_world
from tests.support.web import make_user, sign_in

COMMODITIES = {
    "level_three_commodities": [
        {"item_code": "WIDGET-01", "commodity_code": "31161500", "unit_of_measure": "EA"},
    ],
    "level_three_default_commodity_code": "72101500",
    "level_three_ship_from_zip": "98101",
}


@pytest.fixture(params=["sage500", "sbc"])
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def world(kind: str, settings: Settings, tmp_path: Path) -> Iterator[PaymentsWorld]:
    make = sage500_world if kind == "sage500" else sbc_world
    with make(settings, tmp_path) as made:
        set_paytrace_settings(made, COMMODITIES)
        yield made


def invoice_with(kind: str, world: PaymentsWorld, customer: str, lines: tuple[Line, ...]) -> str:
    if kind == "sage500":
        return sage500_invoice_with_lines(world, customer, lines)
    return sbc_invoice_with_lines(world, customer, lines)


def test_a_visa_charge_for_an_invoice_sends_its_lines_as_level_three(
    kind: str, world: PaymentsWorld, client: Any, tmp_path: Path
) -> None:
    customer = profile_of_brand(world, "Visa")
    number = invoice_with(kind, world, customer, GOOD_LINES)

    answer = charge(world, client, number)

    assert answer["status"] == "approved"
    assert answer["level_three"].startswith("Level 3 data sent to PayTrace (Visa, 2 lines")
    sent = recorded(tmp_path, answer["transaction_id"])
    assert sent is not None
    assert sent["brand"] == "Visa"
    assert sent["invoice_id"] == number
    assert sent["source_address"] == {"zip": "98101"}
    items = sent["line_items"]
    # SBC's sandbox keeps no line discounts: the second line is 2 x 37.50 there
    second = "70.00" if kind == "sage500" else "75.00"
    assert [(i["quantity"], i["unit_cost"], i["amount"]) for i in items] == [
        ("4", "4.24", "16.96"),
        ("2", "37.50", second),
    ]
    lines_and_tax = sum(Decimal(i["amount"]) for i in items) + Decimal(sent["tax_amount"])
    if kind == "sage500":  # Sage 500 keeps the item codes and each line's tax
        assert [i["commodity_code"] for i in items] == ["31161500", "72101500"]
        assert [i["product_id"] for i in items] == ["WIDGET-01", "SVC-INSTALL"]
        assert items[1]["discount_amount"] == "5.00"
        assert lines_and_tax == Decimal(GOOD_TOTAL)
    else:  # SBC's sandbox lines carry no product: the table's default code
        assert {i["commodity_code"] for i in items} == {"72101500"}
        assert lines_and_tax == Decimal(answer["amount"].removeprefix("$"))
    world.process()
    assert world.event(answer["transaction_id"]).status == "posted"


def test_a_mastercard_charge_sends_mastercards_shape_and_a_part_payment_pro_rata(
    world: PaymentsWorld, kind: str, client: Any, tmp_path: Path
) -> None:
    customer = profile_of_brand(world, "MasterCard")
    number = invoice_with(kind, world, customer, GOOD_LINES)

    answer = charge(world, client, number, amount="50.00")

    assert answer["status"] == "approved"
    sent = recorded(tmp_path, answer["transaction_id"])
    assert sent is not None
    assert sent["brand"] == "MasterCard"
    items = sent["line_items"]
    assert all(i["debit_or_credit"] == "D" and "commodity_code" not in i for i in items)
    # part of the invoice: each line's share as quantity 1, adding up to the sale exactly
    assert all(i["quantity"] == "1" and i["unit_cost"] == i["amount"] for i in items)
    assert sum(Decimal(i["amount"]) for i in items) + Decimal(sent["tax_amount"]) == Decimal(
        "50.00"
    )


@pytest.mark.parametrize("kind", ["sage500"], indirect=True)
def test_lines_that_do_not_add_up_post_the_sale_and_say_which_line_is_wrong(
    world: PaymentsWorld, client: Any, tmp_path: Path, log_stream: Any
) -> None:
    customer = profile_of_brand(world, "Visa")
    wrong = (
        Line("WIDGET-01", "Steel widgets", "1", "10.00"),
        Line("WIDGET-02", "Brass widgets", "4", "4.24", extended="19.99"),
    )
    number = sage500_invoice_with_lines(world, customer, wrong)

    answer = charge(world, client, number)

    assert answer["status"] == "approved"
    assert answer["level_three"].startswith(
        "Level 3 data not sent: line 2 amount 19.99 is not 4 x 4.24 (= 16.96)"
    )
    assert recorded(tmp_path, answer["transaction_id"]) is None
    world.process()
    assert world.event(answer["transaction_id"]).status == "posted"
    assert world.invoice(number)["Balance"] == 0
    logged = log_stream.getvalue()
    assert "level_three.refused" in logged
    assert "4012000098765439" not in logged
    # the payment's page says so too
    sign_in(client, make_user(world.runtime.db, Role.VIEWER).email)
    page = client.get(f"/payments/events/{world.event(answer['transaction_id']).id}")
    assert "line 2 amount 19.99 is not 4 x 4.24" in page.text


def test_a_gateway_that_refuses_level_three_still_posts_the_sale(
    settings: Settings, tmp_path: Path, client: Any
) -> None:
    denied = {"denied_paths": "/v1/level_three/visa"}
    with sage500_world(settings, tmp_path, paytrace=denied) as world:
        set_paytrace_settings(world, COMMODITIES)
        customer = profile_of_brand(world, "Visa")
        number = sage500_invoice_with_lines(world, customer, GOOD_LINES)

        answer = charge(world, client, number)

        assert answer["status"] == "approved"
        assert answer["level_three"].startswith("Level 3 data not sent: PayTrace refused")
        assert "insufficient permissions" in answer["level_three"]
        assert recorded(tmp_path, answer["transaction_id"]) is None
        world.process()
        assert world.event(answer["transaction_id"]).status == "posted"


@pytest.mark.parametrize("kind", ["sage500"], indirect=True)
def test_a_discover_charge_sends_no_level_three_and_says_why(
    world: PaymentsWorld, client: Any, tmp_path: Path
) -> None:
    customer = profile_of_brand(world, "Discover")
    number = sage500_invoice_with_lines(world, customer, GOOD_LINES)

    answer = charge(world, client, number)

    assert answer["status"] == "approved"
    assert answer["level_three"] == (
        "Level 3 not applicable: Discover cards take no Level 3 data (only Visa and "
        "MasterCard purchasing cards do)"
    )
    assert recorded(tmp_path, answer["transaction_id"]) is None


@pytest.mark.parametrize("kind", ["sage500"], indirect=True)
def test_the_portals_charge_result_says_what_became_of_level_three(
    world: PaymentsWorld, client: Any
) -> None:
    customer = profile_of_brand(world, "Visa")
    number = sage500_invoice_with_lines(world, customer, GOOD_LINES)
    csrf = sign_in(client, make_user(world.runtime.db, Role.OPERATOR).email)

    page = client.post(
        "/payments/charge",
        data={"csrftoken": csrf, "idempotency_key": "l3-portal-0001", "invoice_number": number},
    )

    assert page.status_code == 200, page.text
    shown = BeautifulSoup(page.text, "html.parser").find(
        attrs={"data-testid": "charge-level-three"}
    )
    assert shown is not None
    assert shown.get_text(strip=True).startswith("Level 3 data sent to PayTrace (Visa, 2 lines")
