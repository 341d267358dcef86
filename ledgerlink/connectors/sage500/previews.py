"""Recent Sage 500 customers (read from its tables), as mapping previews run specs over
them."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import Select, create_engine, select
from sqlalchemy.exc import DBAPIError

from ledgerlink import connections
from ledgerlink.connectors.previews import latest_connection
from ledgerlink.connectors.sage500.connecting import driver_message, url_problem
from ledgerlink.connectors.sage500.tables import tarCustomer, tciAddress, tciContact, tsmCompany
from ledgerlink.mapping.preview import PreviewSource, SampleSource
from ledgerlink.store.mapping_repo import PreviewUnavailable

if TYPE_CHECKING:
    from ledgerlink.runtime import Runtime


def recent_customers_query(company: str, limit: int) -> Select[Any]:
    """The ``limit`` most recently changed customers of ``company``, newest first."""
    return (
        select(
            tarCustomer.c.CustKey,
            tarCustomer.c.CustID,
            tarCustomer.c.CustName,
            tarCustomer.c.Status,
            tarCustomer.c.UpdateDate,
            tciAddress.c.AddrLine1,
            tciAddress.c.AddrLine2,
            tciAddress.c.City,
            tciAddress.c.StateID,
            tciAddress.c.PostalCode,
            tciAddress.c.CountryID,
            tciContact.c.Name.label("ContactName"),
            tciContact.c.EMailAddr,
            tciContact.c.Phone,
            tsmCompany.c.CurrID,
        )
        .select_from(tarCustomer)
        .outerjoin(tciAddress, tciAddress.c.AddrKey == tarCustomer.c.DfltBillToAddrKey)
        .outerjoin(tciContact, tciContact.c.CntctKey == tarCustomer.c.PrimaryCntctKey)
        .outerjoin(tsmCompany, tsmCompany.c.CompanyID == tarCustomer.c.CompanyID)
        .where(tarCustomer.c.CompanyID == company)
        .order_by(tarCustomer.c.UpdateDate.desc(), tarCustomer.c.CustKey.desc())
        .limit(limit)
    )


def recent_sage500_customers(runtime: Runtime, limit: int) -> PreviewSource:
    connection = latest_connection(runtime, "sage500")
    url = connections.read_secret(runtime.vault, connection, "database_url")
    if not url:
        raise PreviewUnavailable(f"{connection.name} has no database URL yet")
    company = connection.settings.get("company_id") or ""
    query = recent_customers_query(company, limit)
    problem = url_problem(url)
    if problem is not None:
        raise PreviewUnavailable(problem)
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            rows = [dict(r._mapping) for r in conn.execute(query)]
    except DBAPIError as exc:
        raise PreviewUnavailable(f"Sage 500 could not be read: {driver_message(exc)}") from None
    finally:
        engine.dispose()
    for row in rows:
        row["CustClassID"] = None
        for key, value in row.items():
            if isinstance(value, datetime):
                row[key] = value.isoformat()
            elif isinstance(value, str):
                row[key] = value.strip()
    if not rows:
        raise PreviewUnavailable(f"{connection.name} has no customers in company {company!r}")
    return SampleSource(
        rows, f"the {len(rows)} most recently changed customers of {connection.name}"
    )
