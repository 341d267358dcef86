"""The Sage 500 tables ledgerlink reads and the staging tables it writes, with Sage's own
table and column names (SQL Server, database usually ``MAS500_app``).

Only the columns ledgerlink uses are declared: the real tables have many more, and the
SQL generated from these definitions runs unchanged against SQL Server
(``mssql+pymssql``), PostgreSQL and SQLite (the sandbox). Staging table names are
configurable per site; these are the defaults the sandbox provides.
"""

from __future__ import annotations

from sqlalchemy import (
    Column,
    DateTime,
    Index,
    Integer,
    MetaData,
    Numeric,
    SmallInteger,
    String,
    Table,
    UniqueConstraint,
)

metadata = MetaData()

MONEY = Numeric(15, 3)  # Sage 500 keeps amounts as decimal(15,3)

tsmCompany = Table(
    "tsmCompany",
    metadata,
    Column("CompanyID", String(3), primary_key=True),
    Column("CompanyName", String(40)),
    Column("CurrID", String(3)),
)

tmcCurrency = Table(
    "tmcCurrency",
    metadata,
    Column("CurrID", String(3), primary_key=True),
    Column("DigitsAfterDecimal", SmallInteger),
)

tarCustomer = Table(
    "tarCustomer",
    metadata,
    Column("CustKey", Integer, primary_key=True),
    Column("CustID", String(12)),
    Column("CustName", String(40)),
    Column("CompanyID", String(3)),
    Column("CustClassKey", Integer),
    Column("CreditLimit", MONEY),
    Column("Status", SmallInteger),
    Column("PrimaryAddrKey", Integer),
    Column("DfltBillToAddrKey", Integer),
    Column("PrimaryCntctKey", Integer),
    Column("CreateDate", DateTime),
    Column("UpdateDate", DateTime),
    Column("UpdateCounter", Integer),
    Index("ix_tarCustomer_id", "CompanyID", "CustID"),
    Index("ix_tarCustomer_changed", "UpdateDate", "CustKey"),
)

tciAddress = Table(
    "tciAddress",
    metadata,
    Column("AddrKey", Integer, primary_key=True),
    Column("AddrName", String(40)),
    Column("AddrLine1", String(40)),
    Column("AddrLine2", String(40)),
    Column("AddrLine3", String(40)),
    Column("AddrLine4", String(40)),
    Column("AddrLine5", String(40)),
    Column("City", String(20)),
    Column("StateID", String(3)),
    Column("PostalCode", String(10)),
    Column("CountryID", String(3)),
)

tciContact = Table(
    "tciContact",
    metadata,
    Column("CntctKey", Integer, primary_key=True),
    Column("Name", String(40)),
    Column("EMailAddr", String(256)),
    Column("Phone", String(17)),
)

tarInvoice = Table(
    "tarInvoice",
    metadata,
    Column("InvcKey", Integer, primary_key=True),
    Column("TranID", String(13)),
    Column("TranNo", String(10)),
    Column("TranType", Integer),
    Column("TranDate", DateTime),
    Column("PostDate", DateTime),
    Column("DueDate", DateTime),
    Column("TranAmt", MONEY),
    Column("TranAmtHC", MONEY),
    Column("Balance", MONEY),
    Column("BalanceHC", MONEY),
    Column("CustKey", Integer),
    Column("CompanyID", String(3)),
    Column("CurrID", String(3)),
    Column("CurrExchRate", Numeric(15, 9)),
    Column("Status", SmallInteger),
    Column("UpdateCounter", Integer),
    Index("ix_tarInvoice_tran", "CompanyID", "TranID"),
    Index("ix_tarInvoice_cust", "CustKey"),
)

#: An invoice's lines (Level 3 data). Sage 500 keeps the line's item, description, unit
#: price and extended amount here, the shipped quantity and the line's sales-tax
#: transaction on ``tarInvoiceLineDist``; comment-only lines (``CmntOnly`` = 1) carry no
#: amount. The ERP writes these; ledgerlink only reads them.
tarInvoiceDetl = Table(
    "tarInvoiceDetl",
    metadata,
    Column("InvoiceLineKey", Integer, primary_key=True),
    Column("InvcKey", Integer),
    Column("SeqNo", Integer),
    Column("ItemKey", Integer),
    Column("Description", String(40)),
    Column("UnitMeasKey", Integer),
    Column("UnitPrice", Numeric(15, 5)),
    Column("ExtAmt", MONEY),  # quantity x unit price, before the trade discount
    Column("TradeDiscAmt", MONEY),
    Column("CmntOnly", SmallInteger),
    Index("ix_tarInvoiceDetl_invc", "InvcKey"),
)

tarInvoiceLineDist = Table(
    "tarInvoiceLineDist",
    metadata,
    Column("InvoiceLineDistKey", Integer, primary_key=True),
    Column("InvoiceLineKey", Integer),
    Column("QtyShipped", Numeric(16, 8)),
    Column("STaxTranKey", Integer),
    Index("ix_tarInvoiceLineDist_line", "InvoiceLineKey"),
)

#: A sales-tax transaction: the tax charged on the lines that point at it.
tciSTaxTran = Table(
    "tciSTaxTran",
    metadata,
    Column("STaxTranKey", Integer, primary_key=True),
    Column("STaxAmt", MONEY),
)

timItem = Table(
    "timItem",
    metadata,
    Column("ItemKey", Integer, primary_key=True),
    Column("ItemID", String(30)),
    Column("CompanyID", String(3)),
)

tciUnitMeasure = Table(
    "tciUnitMeasure",
    metadata,
    Column("UnitMeasKey", Integer, primary_key=True),
    Column("UnitMeasID", String(6)),
    Column("CompanyID", String(3)),
)

tarCustPmt = Table(
    "tarCustPmt",
    metadata,
    Column("CustPmtKey", Integer, primary_key=True),
    Column("CustKey", Integer),
    Column("TranID", String(13)),
    Column("TranNo", String(10)),
    Column("TranDate", DateTime),
    Column("TranAmt", MONEY),
    Column("UnappliedAmt", MONEY),
    Column("CurrID", String(3)),
    Column("CompanyID", String(3)),
    Column("TranCmnt", String(50)),
)

tglAccount = Table(
    "tglAccount",
    metadata,
    Column("GLAcctKey", Integer, primary_key=True),
    Column("GLAcctNo", String(100)),
    Column("Description", String(30)),
    Column("CompanyID", String(3)),
)

#: Applications of customer payments to invoices (Sage 500's AR payment application table).
tarPmtAppl = Table(
    "tarPmtAppl",
    metadata,
    Column("PmtApplKey", Integer, primary_key=True),
    Column("ApplyFromPmtKey", Integer, nullable=False),
    Column("ApplyToInvcKey", Integer, nullable=False),
    Column("PmtAmt", MONEY, nullable=False),
    Column("DiscTakenAmt", MONEY, nullable=False, default=0),
    Column("ApplyDate", DateTime),
    Index("ix_tarPmtAppl_from", "ApplyFromPmtKey"),
)

# -- staging: what ledgerlink writes and the import procedure posts -------------------------
#
# ``implicit_returning=False``: on SQL Server SQLAlchemy would otherwise fetch a new row's
# ``RowKey`` with ``INSERT … OUTPUT inserted.[RowKey] VALUES …``, which SQL Server refuses
# ("The target table … cannot have any enabled triggers if the statement contains an OUTPUT
# clause without INTO clause") on a staging table a site has put a trigger on, as sites do
# to start the import as rows arrive. Without it the key comes from ``scope_identity()``.

#: ProcessStatus of a staging row: waiting for the import, posted, or refused (see ErrorMessage).
PENDING, POSTED, FAILED = 0, 1, 2

StgCashRcpt = Table(
    "StgCashRcpt",
    metadata,
    Column("RowKey", Integer, primary_key=True, autoincrement=True),
    Column("ImportReference", String(64), nullable=False),
    Column("CompanyID", String(3), nullable=False),
    Column("CustID", String(12), nullable=False),
    Column("TranType", String(20), nullable=False, default="CashRcpt"),
    Column("TranDate", DateTime),
    Column("TranAmt", MONEY),
    Column("CurrID", String(3)),
    Column("GLAcctNo", String(100)),
    Column("TranCmnt", String(50)),
    # One application may ride on the receipt row itself; more go in StgCashRcptAppl.
    Column("ApplyToInvcID", String(13)),
    Column("PmtAmt", MONEY),
    Column("ProcessStatus", SmallInteger, nullable=False, default=PENDING),
    Column("ErrorMessage", String(255)),
    Column("CustPmtKey", Integer),
    Column("CreateDate", DateTime),
    Column("ProcessDate", DateTime),
    Column("Attempts", Integer, nullable=False, default=0),
    UniqueConstraint("ImportReference", name="uq_StgCashRcpt_ImportReference"),
    Index("ix_StgCashRcpt_status", "ProcessStatus"),
    implicit_returning=False,
)

StgCashRcptAppl = Table(
    "StgCashRcptAppl",
    metadata,
    Column("RowKey", Integer, primary_key=True, autoincrement=True),
    Column("ImportReference", String(64), nullable=False),
    Column("ApplyToInvcID", String(13), nullable=False),
    Column("PmtAmt", MONEY, nullable=False),
    Column("DiscTakenAmt", MONEY),
    Index("ix_StgCashRcptAppl_ref", "ImportReference"),
    implicit_returning=False,
)

StgCustomer = Table(
    "StgCustomer",
    metadata,
    Column("RowKey", Integer, primary_key=True, autoincrement=True),
    Column("ImportReference", String(64), nullable=False),
    Column("CompanyID", String(3), nullable=False),
    Column("CustID", String(12), nullable=False),
    Column("CustName", String(40)),
    Column("AddrLine1", String(40)),
    Column("AddrLine2", String(40)),
    Column("City", String(20)),
    Column("StateID", String(3)),
    Column("PostalCode", String(10)),
    Column("CountryID", String(3)),
    Column("CntctName", String(40)),
    Column("EMailAddr", String(256)),
    Column("Phone", String(17)),
    Column("ProcessStatus", SmallInteger, nullable=False, default=PENDING),
    Column("ErrorMessage", String(255)),
    Column("CustKey", Integer),
    Column("CreateDate", DateTime),
    Column("ProcessDate", DateTime),
    Column("Attempts", Integer, nullable=False, default=0),
    UniqueConstraint("ImportReference", name="uq_StgCustomer_ImportReference"),
    Index("ix_StgCustomer_status", "ProcessStatus"),
    implicit_returning=False,
)
