"""The PayTrace simulator settles with card-brand fees and withholds chargebacks."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from ledgerlink.cli import app
from ledgerlink.connectors.paytrace import PayTraceGateway, PayTraceOptions
from ledgerlink.domain.accounts import Batch, BatchCardBrand
from ledgerlink.domain.money import Money
from ledgerlink.recon.statements import parse_statement
from ledgerlink.sandbox.paytrace import PayTraceConfig
from tests.integration.sandbox.test_paytrace_api import MASTERCARD, PayTrace, running

FEES = {"Visa": "1.80%+0.10", "MasterCard": "2.00%", "other": "3%+0.30"}


@pytest.fixture
def paytrace(tmp_path: Path) -> Iterator[PayTrace]:
    config = PayTraceConfig(seed_people=0, card_fees=FEES, deposit_delay_days=2)
    with running(tmp_path, config) as client:
        yield client


def deposit_of(paytrace: PayTrace, batch_number: int) -> dict[str, Any]:
    deposits = paytrace.http.get("/_sandbox/deposits").json()["deposits"]
    return next(d for d in deposits if d["batch_number"] == batch_number)


def test_settlement_keeps_each_brands_fee_from_the_deposit(paytrace: PayTrace) -> None:
    paytrace.sale("100.00")  # Visa: 1.80 + 0.10
    paytrace.sale("33.33")  # Visa: 0.59994 -> 0.60 (half up per sale) + 0.10
    paytrace.sale("50.00", number=MASTERCARD)  # MasterCard: 1.00
    batch = paytrace.settle()["batch"]

    deposit = deposit_of(paytrace, batch["batch_number"])

    assert deposit["gross"] == "183.33"
    assert deposit["fees_by_card_type"] == {"MasterCard": "1.00", "Visa": "2.60"}
    assert deposit["fees"] == "3.60"
    assert deposit["chargebacks_withheld"] == "0.00"
    assert deposit["net"] == "179.73"
    assert Decimal(deposit["net"]) == Decimal(str(batch["net_amount"])) - Decimal("3.60")


def test_a_chargeback_is_withheld_from_the_next_batchs_deposit(paytrace: PayTrace) -> None:
    sale = paytrace.sale("80.00")["transaction_id"]
    first = paytrace.settle()["batch"]["batch_number"]
    filed = paytrace.http.post(
        "/_sandbox/disputes", json={"transaction_id": sale, "amount": "30.00"}
    )
    assert filed.status_code == 201
    paytrace.sale("40.00")
    second = paytrace.settle()["batch"]["batch_number"]
    paytrace.sale("10.00")
    third = paytrace.settle()["batch"]["batch_number"]

    assert deposit_of(paytrace, first)["chargebacks_withheld"] == "0.00"
    withheld = deposit_of(paytrace, second)
    assert withheld["chargebacks_withheld"] == "30.00"
    assert withheld["withheld_disputes"] == [
        {"case_number": filed.json()["case_number"], "amount": "30.00"}
    ]
    # 40.00 - (0.72 + 0.10) fees - 30.00 withheld
    assert withheld["net"] == "9.18"
    assert deposit_of(paytrace, third)["chargebacks_withheld"] == "0.00"


def test_deposits_are_dated_by_the_delay_and_filtered_by_date(paytrace: PayTrace) -> None:
    paytrace.sale("20.00")
    batch = paytrace.settle()["batch"]["batch_number"]
    deposit = deposit_of(paytrace, batch)
    assert deposit["deposit_on"] > deposit["settled_on"]
    same_day = paytrace.http.get(
        "/_sandbox/deposits", params={"from": deposit["deposit_on"], "to": deposit["deposit_on"]}
    ).json()["deposits"]
    assert [d["batch_number"] for d in same_day] == [batch]
    before = paytrace.http.get("/_sandbox/deposits", params={"to": deposit["settled_on"]}).json()
    assert batch not in [d["batch_number"] for d in before["deposits"]]
    assert paytrace.http.get("/_sandbox/deposits", params={"from": "June"}).status_code == 400


def test_the_batch_export_keeps_paytraces_fields_only(paytrace: PayTrace) -> None:
    paytrace.sale("12.00")
    batch = paytrace.settle()["batch"]
    assert "fees" not in batch
    assert "net_deposit" not in batch
    assert batch["sales_amount"] == 12.0
    assert batch["card_types"] == [{"card_type": "Visa", "count": 1, "net_amount": 12.0}]


def test_seeded_history_batches_have_deposits(tmp_path: Path) -> None:
    with running(tmp_path, PayTraceConfig(seed_people=40)) as paytrace:
        deposits = paytrace.http.get("/_sandbox/deposits").json()["deposits"]
    assert [d["batch_number"] for d in deposits] == [1001, 1002, 1003]
    for deposit in deposits:
        gross, fees, net = (Decimal(deposit[k]) for k in ("gross", "fees", "net"))
        assert fees > 0
        assert net == gross - fees


def test_a_fee_rate_that_cannot_be_read_is_refused_naming_it() -> None:
    with pytest.raises(ValueError, match=r"1\.8 percent"):
        PayTraceConfig(card_fees={"Visa": "1.8 percent"})
    config = PayTraceConfig.model_validate({"card_fees": "Visa:1.5%+0.05,Amex:3%"})
    assert config.card_fees == {"Visa": "1.5%+0.05", "Amex": "3%"}


def test_the_connector_reads_gross_counts_and_card_brands_of_a_batch(paytrace: PayTrace) -> None:
    paytrace.sale("100.00")
    paytrace.sale("50.00", number=MASTERCARD)
    settled = paytrace.settle()["batch"]["batch_number"]

    async def read() -> list[Batch]:
        options = PayTraceOptions(
            api_base_url=paytrace.base_url,
            username=paytrace.config.username,
            password=paytrace.config.password,
            integrator_id=paytrace.config.integrator_id,
        )
        async with PayTraceGateway(options) as gateway:
            return await gateway.batches(
                date.today() - timedelta(days=1), date.today() + timedelta(days=1)
            )

    batch = next(b for b in asyncio.run(read()) if b.number == str(settled))
    assert batch.count == 2
    assert batch.sales == Money(15000, "USD")
    assert batch.refunds == Money(0, "USD")
    assert batch.net == Money(15000, "USD")
    assert batch.sales_count == 2
    assert batch.card_brands == (
        BatchCardBrand("MasterCard", 1, Money(5000, "USD")),
        BatchCardBrand("Visa", 1, Money(10000, "USD")),
    )


def test_a_written_statement_lists_the_net_deposits_with_the_chosen_anomalies(
    paytrace: PayTrace, tmp_path: Path
) -> None:
    numbers = []
    for amount in ("100.00", "60.00", "40.00"):
        paytrace.sale(amount)
        numbers.append(str(paytrace.settle()["batch"]["batch_number"]))
    deposits = {
        str(d["batch_number"]): d
        for d in paytrace.http.get("/_sandbox/deposits").json()["deposits"]
    }
    first, second, third = numbers
    due = date.fromisoformat(deposits[first]["deposit_on"])
    for format in ("bai2", "camt053", "ofx"):
        out = tmp_path / f"statement.{format}"
        result = CliRunner().invoke(
            app,
            [
                "sandbox", "statement", "--format", format, "--out", str(out),
                "--url", paytrace.base_url, "--from", (due - timedelta(days=40)).isoformat(),
                "--to", (due + timedelta(days=5)).isoformat(),
                "--missing-deposit", second, "--fee-difference", f"{third}:150",
                "--late", f"{first}:3", "--unknown-credit", "125.00",
            ],
        )  # fmt: skip
        assert result.exit_code == 0, result.output
        statement = parse_statement(out.read_bytes(), out.name)
        lines = {line.reference: line for line in statement.lines}
        late = lines[f"PAYTRACE BATCH {first}"]
        assert late.amount == Money.parse(deposits[first]["net"], "USD")
        assert late.booked_on == due + timedelta(days=3)
        assert f"PAYTRACE BATCH {second}" not in lines
        short = lines[f"PAYTRACE BATCH {third}"].amount
        assert short == Money.parse(deposits[third]["net"], "USD") - Money(150, "USD")
        assert lines["UNKNOWN 1"].amount == Money(12500, "USD")
        # every other deposit in the period is its batch's net, exactly
        for reference, line in lines.items():
            batch = reference.removeprefix("PAYTRACE BATCH ")
            if batch in deposits and batch not in (first, third):
                assert line.amount == Money.parse(deposits[batch]["net"], "USD"), format
