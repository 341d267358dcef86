"""Reading customers, invoices and currencies from the Sage 500 tables.

Incremental reads use ``UpdateDate`` (with ``CustKey`` as a tie-breaker) as a keyset
cursor, so a read of 100,000 customers is a series of small indexed queries rather than
one long transaction holding locks on the ERP.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Engine, and_, func, or_, select
from sqlalchemy.engine import Row

from ledgerlink.connectors.sage500.tables import (
    tarCustomer,
    tarCustPmt,
    tarInvoice,
    tarPmtAppl,
    tciAddress,
    tciContact,
    tglAccount,
    tmcCurrency,
)
from ledgerlink.domain.accounts import (
    Address,
    CustomerAccount,
    Invoice,
    InvoiceStatus,
    LedgerCreditNote,
    LedgerPayment,
)
from ledgerlink.domain.money import Money

SYSTEM = "sage500"
BATCH = 1000


def currency_digits(engine: Engine) -> dict[str, int]:
    with engine.connect() as connection:
        rows = connection.execute(select(tmcCurrency.c.CurrID, tmcCurrency.c.DigitsAfterDecimal))
        return {str(r.CurrID).strip(): int(r.DigitsAfterDecimal) for r in rows}


def to_money(value: Decimal | int | float | None, currency: str, digits: int) -> Money:
    """A Sage 500 amount (decimal(15,3)) as exact Money in ``digits`` decimal places.

    Sage stores three places for every currency; an amount with more precision than the
    currency allows is a data problem and is refused rather than rounded away.
    """
    amount = Decimal(str(value or 0))
    scaled = amount.scaleb(digits)
    if scaled != scaled.to_integral_value():
        raise ValueError(
            f"Sage 500 amount {amount} has more than {digits} decimal places for {currency}"
        )
    return Money(int(scaled), currency)


def _customer_query() -> Any:
    return (
        select(
            tarCustomer.c.CustKey,
            tarCustomer.c.CustID,
            tarCustomer.c.CustName,
            tarCustomer.c.UpdateDate,
            tarCustomer.c.Status,
            tciAddress.c.AddrLine1,
            tciAddress.c.AddrLine2,
            tciAddress.c.City,
            tciAddress.c.StateID,
            tciAddress.c.PostalCode,
            tciAddress.c.CountryID,
            tciContact.c.EMailAddr,
            tciContact.c.Phone,
        )
        .select_from(tarCustomer)
        .outerjoin(tciAddress, tciAddress.c.AddrKey == tarCustomer.c.DfltBillToAddrKey)
        .outerjoin(tciContact, tciContact.c.CntctKey == tarCustomer.c.PrimaryCntctKey)
    )


def _customer(row: Row[Any], currency: str) -> CustomerAccount:
    return CustomerAccount(
        system=SYSTEM,
        id=str(row.CustKey),
        number=str(row.CustID or "").strip(),
        name=str(row.CustName or "").strip(),
        email=str(row.EMailAddr or "").strip(),
        phone=str(row.Phone or "").strip(),
        address=Address(
            line1=str(row.AddrLine1 or "").strip(),
            line2=str(row.AddrLine2 or "").strip(),
            city=str(row.City or "").strip(),
            region=str(row.StateID or "").strip(),
            postal_code=str(row.PostalCode or "").strip(),
            country=_country(row.CountryID),
        ),
        currency=currency,
        updated_at=row.UpdateDate,
        deleted=row.Status == 0,  # Sage 500: 0 deleted, 1 active, 2 inactive, 3 temporary
    )


def _country(value: Any) -> str:
    text = str(value or "").strip().upper()
    return {"USA": "US", "CAN": "CA", "GBR": "GB"}.get(text, text)


def customer_page_query(
    company_id: str, changed_since: datetime | None, after: tuple[datetime, int] | None
) -> Any:
    """One batch of customers: those after the (UpdateDate, CustKey) ``after``."""
    query = _customer_query().where(tarCustomer.c.CompanyID == company_id)
    if changed_since is not None:
        query = query.where(tarCustomer.c.UpdateDate >= changed_since)
    if after is not None:
        query = query.where(
            or_(
                tarCustomer.c.UpdateDate > after[0],
                and_(tarCustomer.c.UpdateDate == after[0], tarCustomer.c.CustKey > after[1]),
            )
        )
    return query.order_by(tarCustomer.c.UpdateDate, tarCustomer.c.CustKey).limit(BATCH)


def customers(
    engine: Engine, company_id: str, currency: str, changed_since: datetime | None = None
) -> Iterator[CustomerAccount]:
    """Customers of ``company_id`` ordered by (UpdateDate, CustKey), read in batches."""
    last: tuple[datetime, int] | None = None
    while True:
        query = customer_page_query(company_id, changed_since, last)
        with engine.connect() as connection:
            rows = connection.execute(query).all()
        for row in rows:
            yield _customer(row, currency)
        if len(rows) < BATCH:
            return
        last = (rows[-1].UpdateDate, rows[-1].CustKey)


def customer_by(
    engine: Engine, company_id: str, currency: str, **match: Any
) -> CustomerAccount | None:
    query = _customer_query().where(tarCustomer.c.CompanyID == company_id)
    for column, value in match.items():
        query = query.where(tarCustomer.c[column] == value)
    with engine.connect() as connection:
        row = connection.execute(query).first()
    return _customer(row, currency) if row is not None else None


def invoices(
    engine: Engine,
    company_id: str,
    digits: dict[str, int],
    *,
    customer_key: int | None = None,
    open_only: bool = True,
    tran_id: str | None = None,
) -> Iterator[Invoice]:
    query = (
        select(tarInvoice, tarCustomer.c.CustID)
        .select_from(tarInvoice)
        .join(tarCustomer, tarCustomer.c.CustKey == tarInvoice.c.CustKey)
        .where(tarInvoice.c.CompanyID == company_id)
        .order_by(tarInvoice.c.InvcKey)
    )
    if customer_key is not None:
        query = query.where(tarInvoice.c.CustKey == customer_key)
    if open_only:
        query = query.where(tarInvoice.c.Balance != 0)
    if tran_id is not None:
        query = query.where(tarInvoice.c.TranID == tran_id)
    # Credit memos live in tarInvoice too (TranType 502): they are read by credit_notes().
    query = query.where(
        or_(tarInvoice.c.TranType.is_(None), tarInvoice.c.TranType != CREDIT_MEMO_TRAN_TYPE)
    )
    with engine.connect() as connection:
        rows = connection.execute(query).all()
    for row in rows:
        yield invoice_of(row, digits)


def invoice_of(row: Row[Any], digits: dict[str, int]) -> Invoice:
    """A ``tarInvoice`` row (with the customer's ``CustID``) as an :class:`Invoice`."""
    currency = str(row.CurrID).strip()
    places = digits.get(currency, 2)
    total = to_money(row.TranAmt, currency, places)
    outstanding = to_money(row.Balance, currency, places)
    return Invoice(
        system=SYSTEM,
        id=str(row.InvcKey),
        number=str(row.TranID or "").strip(),
        customer_id=str(row.CustKey),
        date=_date(row.TranDate),
        due_date=_date(row.DueDate) if row.DueDate else None,
        total=total,
        outstanding=outstanding,
        status=(
            InvoiceStatus.PAID
            if outstanding.is_zero
            else InvoiceStatus.PART_PAID
            if outstanding != total
            else InvoiceStatus.UNPAID
        ),
    )


#: Invoice keys read again below the mark: ``InvcKey`` is handed out when a row is
#: inserted, so an invoice whose transaction commits after a later one's has a key below
#: the mark already read. Callers drop what they have seen by invoice id.
NEW_INVOICE_KEY_OVERLAP = 50


def invoices_created_after(
    engine: Engine,
    company_id: str,
    digits: dict[str, int],
    after_key: int | None,
    floor_key: int = 0,
) -> tuple[list[Invoice], int]:
    """Open invoices (not credit memos) whose ``InvcKey`` is above ``after_key`` less the
    overlap (never at or below ``floor_key``), and the largest ``InvcKey`` of the company
    (the next mark). ``after_key`` None: no invoices, only the mark (where to start)."""
    with engine.connect() as connection:
        mark = connection.scalar(
            select(func.max(tarInvoice.c.InvcKey)).where(tarInvoice.c.CompanyID == company_id)
        )
        if after_key is None:
            return [], int(mark or 0)
        rows = connection.execute(
            select(tarInvoice, tarCustomer.c.CustID)
            .select_from(tarInvoice)
            .join(tarCustomer, tarCustomer.c.CustKey == tarInvoice.c.CustKey)
            .where(
                tarInvoice.c.CompanyID == company_id,
                tarInvoice.c.InvcKey > max(after_key - NEW_INVOICE_KEY_OVERLAP, floor_key),
                tarInvoice.c.Balance != 0,
                or_(
                    tarInvoice.c.TranType.is_(None),
                    tarInvoice.c.TranType != CREDIT_MEMO_TRAN_TYPE,
                ),
            )
            .order_by(tarInvoice.c.InvcKey)
        ).all()
    return [invoice_of(row, digits) for row in rows], max(int(mark or 0), after_key)


#: tarInvoice.TranType of an AR credit memo (501 is an invoice).
CREDIT_MEMO_TRAN_TYPE = 502


def credit_notes(
    engine: Engine, company_id: str, digits: dict[str, int]
) -> Iterator[LedgerCreditNote]:
    """AR credit memos (what is left to apply is the memo's ``Balance``)."""
    query = (
        select(tarInvoice)
        .where(
            tarInvoice.c.CompanyID == company_id,
            tarInvoice.c.TranType == CREDIT_MEMO_TRAN_TYPE,
        )
        .order_by(tarInvoice.c.InvcKey)
    )
    with engine.connect() as connection:
        rows = connection.execute(query).all()
    for row in rows:
        currency = str(row.CurrID).strip()
        places = digits.get(currency, 2)
        amount = to_money(abs(row.TranAmt), currency, places)
        unallocated = to_money(abs(row.Balance), currency, places)
        yield LedgerCreditNote(
            id=str(row.InvcKey),
            customer_id=str(row.CustKey),
            number=str(row.TranID or "").strip(),
            on=_date(row.TranDate),
            amount=amount,
            unallocated=unallocated,
            status="applied" if unallocated.is_zero else "open",
        )


def _date(value: Any) -> date:
    return value.date() if isinstance(value, datetime) else value


def gl_accounts(engine: Engine, company_id: str) -> list[dict[str, str]]:
    """GL accounts of the company (number and description), for the settings pages."""
    with engine.connect() as connection:
        rows = connection.execute(
            select(tglAccount.c.GLAcctNo, tglAccount.c.Description)
            .where(tglAccount.c.CompanyID == company_id)
            .order_by(tglAccount.c.GLAcctNo)
        )
        return [
            {"number": str(r.GLAcctNo).strip(), "description": str(r.Description or "").strip()}
            for r in rows
        ]


def payment_page_query(company_id: str, after: int) -> Any:
    """One batch of customer payments: those with a key above ``after``."""
    return (
        select(tarCustPmt)
        .where(tarCustPmt.c.CompanyID == company_id, tarCustPmt.c.CustPmtKey > after)
        .order_by(tarCustPmt.c.CustPmtKey)
        .limit(BATCH)
    )


def payments(engine: Engine, company_id: str, digits: dict[str, int]) -> Iterator[LedgerPayment]:
    """Customer payments (receipts positive, refunds negative in Sage 500) with the
    invoices each applied to."""
    last = 0
    while True:
        with engine.connect() as connection:
            rows = connection.execute(payment_page_query(company_id, last)).all()
            keys = [r.CustPmtKey for r in rows]
            applications: dict[int, dict[str, Decimal]] = {}
            if keys:
                for a in connection.execute(
                    select(
                        tarPmtAppl.c.ApplyFromPmtKey,
                        tarPmtAppl.c.ApplyToInvcKey,
                        tarPmtAppl.c.PmtAmt,
                    ).where(tarPmtAppl.c.ApplyFromPmtKey.in_(keys))
                ):
                    applications.setdefault(a.ApplyFromPmtKey, {})[str(a.ApplyToInvcKey)] = Decimal(
                        str(a.PmtAmt)
                    )
        for row in rows:
            currency = str(row.CurrID).strip()
            places = digits.get(currency, 2)
            amount = to_money(row.TranAmt, currency, places)
            yield LedgerPayment(
                id=str(row.CustPmtKey),
                kind="refund" if amount.is_negative else "receipt",
                customer_id=str(row.CustKey),
                on=_date(row.TranDate),
                amount=abs(amount),
                unallocated=abs(to_money(row.UnappliedAmt, currency, places)),
                reference=str(row.TranCmnt or row.TranID or "").strip(),
                applied=tuple(
                    (k, to_money(v, currency, places))
                    for k, v in applications.get(row.CustPmtKey, {}).items()
                ),
            )
        if len(rows) < BATCH:
            return
        last = rows[-1].CustPmtKey
