"""Level 3 card data (purchasing cards): built from an invoice's lines, checked before it
is sent.

PayTrace does not check that line items add up (its live sandbox accepted 4 x 4.24 with a
line amount of 19.99), but the card brands' interchange review does, and data that does
not add up loses the lower rate it was sent for. So ledgerlink checks its own sums, in
integer minor units, and refuses to send what does not add up, naming the line and field:

* each line: ``amount = round(quantity x unit price) - discount``;
* the invoice: ``sum of line amounts + tax = invoice total``;
* what is sent: ``sum of line amounts + tax = the sale``.

A payment of part of an invoice (a partly paid invoice's open balance, or an amount the
operator typed) sends the lines **pro rata**: the sale is split over the line amounts and
the tax in proportion (:meth:`Money.allocate`, so the parts add up to the sale to the cent),
and each line is sent as quantity 1 of its share, with its description, product code,
commodity code and unit of measure. Quantities and unit prices of a part-payment would
describe goods the payer did not pay for, so they are not sent.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

from ledgerlink.domain.invoice_lines import InvoiceDetail, InvoiceLine
from ledgerlink.domain.money import Money

VISA = "visa"
MASTERCARD = "mastercard"
#: PayTrace's longest texts for a line item.
DESCRIPTION_MAX = 35
PRODUCT_ID_MAX = 12
#: A commodity code (UNSPSC, NIGP, …): 1 to 12 letters or digits, not all zeros; a unit of
#: measure 1 to 12 letters or digits (UN/ECE rec. 20 codes such as EA, HUR, KGM).
COMMODITY_CODE = re.compile(r"^(?!0+$)[A-Za-z0-9]{1,12}$")
UNIT_OF_MEASURE = re.compile(r"^[A-Za-z0-9]{1,12}$")


def brand_of(card_type: str) -> str | None:
    """``visa`` or ``mastercard`` for the brands Level 3 exists for; None for the rest
    (Amex, Discover, …), for which Level 3 does not apply."""
    name = re.sub(r"[^a-z]", "", card_type.casefold())
    if name == "visa":
        return VISA
    if name in ("mastercard", "mc"):
        return MASTERCARD
    return None


class LevelThreeRefused(ValueError):
    """The data was not sent; ``field`` names what is wrong, ``message`` says it in words."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


@dataclass(frozen=True, slots=True)
class CommodityRule:
    item_code: str
    commodity_code: str
    unit_of_measure: str


@dataclass(frozen=True, slots=True)
class CommodityTable:
    """Item code → commodity code and unit of measure, with a default for other items."""

    rules: tuple[CommodityRule, ...] = ()
    default_commodity_code: str = ""
    default_unit_of_measure: str = "EA"

    def lookup(self, item_code: str, ledger_unit: str = "") -> tuple[str, str]:
        wanted = item_code.strip().casefold()
        for rule in self.rules:
            if wanted and rule.item_code.strip().casefold() == wanted:
                return rule.commodity_code, rule.unit_of_measure or ledger_unit or "EA"
        return self.default_commodity_code, (
            ledger_unit if UNIT_OF_MEASURE.match(ledger_unit) else self.default_unit_of_measure
        )


@dataclass(frozen=True, slots=True)
class LevelThreeLine:
    description: str
    product_id: str
    commodity_code: str
    quantity: Decimal
    unit_of_measure: str
    unit_cost: Money
    discount: Money
    amount: Money


@dataclass(frozen=True, slots=True)
class LevelThreeData:
    """What is sent for one approved sale (PayTrace's Visa or MasterCard shape)."""

    brand: str  # VISA | MASTERCARD
    invoice_number: str
    customer_reference: str
    tax: Money
    ship_to_zip: str
    ship_from_zip: str
    lines: tuple[LevelThreeLine, ...]

    @property
    def total(self) -> Money:
        return sum((line.amount for line in self.lines), self.tax)


def expected_amount(line: InvoiceLine) -> int:
    """The line's amount in minor units as quantity x unit price - discount (the product
    rounded half up to the minor unit, as ledgers round a line)."""
    gross = (line.quantity * line.unit_price.minor).quantize(Decimal(1), ROUND_HALF_UP)
    return int(gross) - line.discount.minor


def check_lines(detail: InvoiceDetail) -> None:
    """Refuse an invoice whose lines do not add up, naming the first line or total."""
    currency = detail.total.currency
    if not detail.lines:
        raise LevelThreeRefused("invoice_lines", f"invoice {detail.number} has no lines")
    for line in detail.lines:
        where = f"line {line.position}"
        for money in (line.unit_price, line.discount, line.tax, line.amount):
            if money.currency != currency:
                raise LevelThreeRefused(
                    f"{where}.currency",
                    f"{where} is in {money.currency}, the invoice in {currency}",
                )
        if line.quantity <= 0:
            raise LevelThreeRefused(
                f"{where}.quantity",
                f"{where} quantity {line.quantity} is not above zero; Level 3 takes only "
                "goods or services sold (enter credits as a discount)",
            )
        if line.amount.is_negative or line.unit_price.is_negative or line.discount.is_negative:
            raise LevelThreeRefused(
                f"{where}.amount", f"{where} has a negative amount, price or discount"
            )
        if expected_amount(line) != line.amount.minor:
            discount = f" - {line.discount.format_plain()} discount" if line.discount.minor else ""
            raise LevelThreeRefused(
                f"{where}.amount",
                f"{where} amount {line.amount.format_plain()} is not {_quantity(line.quantity)}"
                f" x {line.unit_price.format_plain()}{discount} "
                f"(= {Money(expected_amount(line), currency).format_plain()})",
            )
    lines = sum((line.amount for line in detail.lines), Money.zero(currency))
    if lines + detail.tax != detail.total:
        raise LevelThreeRefused(
            "invoice_total",
            f"the lines ({lines.format_plain()}) plus tax ({detail.tax.format_plain()}) come "
            f"to {(lines + detail.tax).format_plain()}, not the invoice total "
            f"{detail.total.format_plain()}",
        )


def build(
    detail: InvoiceDetail,
    sale: Money,
    brand: str,
    commodities: CommodityTable,
    *,
    customer_reference: str = "",
    ship_to_zip: str = "",
    ship_from_zip: str = "",
) -> LevelThreeData:
    """The Level 3 data for ``sale`` on ``detail``'s invoice, or :class:`LevelThreeRefused`
    naming what does not add up. The result always adds up to ``sale`` exactly."""
    check_lines(detail)
    if sale.currency != detail.total.currency:
        raise LevelThreeRefused(
            "amount", f"the sale is in {sale.currency}, the invoice in {detail.total.currency}"
        )
    if sale > detail.total or sale.minor <= 0:
        raise LevelThreeRefused(
            "amount",
            f"the sale {sale.format_plain()} is not between 0.01 and the invoice total "
            f"{detail.total.format_plain()}",
        )
    coded = [
        (line, *commodities.lookup(line.item_code, line.unit_of_measure)) for line in detail.lines
    ]
    if sale == detail.total:
        lines = tuple(
            LevelThreeLine(
                description=_description(line),
                product_id=line.item_code.strip()[:PRODUCT_ID_MAX],
                commodity_code=code,
                quantity=line.quantity,
                unit_of_measure=unit,
                unit_cost=line.unit_price,
                discount=line.discount,
                amount=line.amount,
            )
            for line, code, unit in coded
        )
        tax = detail.tax
    else:
        *shares, tax = pro_rata(sale, [line.amount for line in detail.lines], detail.tax)
        lines = tuple(
            LevelThreeLine(
                description=_description(line),
                product_id=line.item_code.strip()[:PRODUCT_ID_MAX],
                commodity_code=code,
                quantity=Decimal(1),
                unit_of_measure=unit,
                unit_cost=share,
                discount=Money.zero(sale.currency),
                amount=share,
            )
            for (line, code, unit), share in zip(coded, shares, strict=True)
        )
    data = LevelThreeData(
        brand=brand,
        invoice_number=detail.number,
        customer_reference=customer_reference,
        tax=tax,
        ship_to_zip=ship_to_zip,
        ship_from_zip=ship_from_zip,
        lines=lines,
    )
    if data.total != sale:  # cannot happen with the rules above; never send it if it does
        raise LevelThreeRefused(
            "amount",
            f"the lines and tax come to {data.total.format_plain()}, not the sale "
            f"{sale.format_plain()}",
        )
    return data


def pro_rata(sale: Money, amounts: list[Money], tax: Money) -> list[Money]:
    """``sale`` split over ``amounts`` and ``tax`` in proportion (the tax's share last);
    the parts add up to ``sale`` exactly and none is more than what it stands for."""
    ratios = [a.minor for a in amounts] + [tax.minor]
    return sale.allocate(ratios)


def _description(line: InvoiceLine) -> str:
    text = " ".join(line.description.split()) or line.item_code or f"Line {line.position}"
    return text[:DESCRIPTION_MAX]


def _quantity(quantity: Decimal) -> str:
    return format(quantity.normalize(), "f")
