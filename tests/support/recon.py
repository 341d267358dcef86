"""A small reconciliation to test with: a PayTrace and an SBC connection, a scope, a
settled batch of two sales of which one was receipted, and a bank statement (OFX) with
the batch's deposit and a credit nobody explains."""

from __future__ import annotations

from datetime import date

from ledgerlink.recon.scopes import ensure_scope
from ledgerlink.store.db import Database
from ledgerlink.store.models import Connection, User
from ledgerlink.store.recon_models import ReconBatch, ReconReceipt, ReconTransaction

AS_OF = date(2026, 11, 20)

OFX = b"""OFXHEADER:100
DATA:OFXSGML
VERSION:102
SECURITY:NONE
ENCODING:USASCII
CHARSET:1252
COMPRESSION:NONE
OLDFILEUID:NONE
NEWFILEUID:NONE

<OFX>
<SIGNONMSGSRSV1><SONRS><STATUS><CODE>0<SEVERITY>INFO</STATUS><DTSERVER>20261130120000<LANGUAGE>ENG</SONRS></SIGNONMSGSRSV1>
<BANKMSGSRSV1><STMTTRNRS><TRNUID>1<STATUS><CODE>0<SEVERITY>INFO</STATUS>
<STMTRS><CURDEF>USD<BANKACCTFROM><BANKID>121140399<ACCTID>000123456789<ACCTTYPE>CHECKING</BANKACCTFROM>
<BANKTRANLIST><DTSTART>20261101<DTEND>20261130
<STMTTRN><TRNTYPE>CREDIT<DTPOSTED>20261112<TRNAMT>97.00<FITID>F1<NAME>PT<MEMO>BATCH 1001</STMTTRN>
<STMTTRN><TRNTYPE>CREDIT<DTPOSTED>20261113<TRNAMT>500.00<FITID>F2<NAME>UNKNOWN<MEMO>WIRE</STMTTRN>
</BANKTRANLIST>
<LEDGERBAL><BALAMT>597.00<DTASOF>20261130</LEDGERBAL>
</STMTRS></STMTTRNRS></BANKMSGSRSV1>
</OFX>
"""


def seed_scope(db: Database) -> int:
    """A scope whose batch 1001 (two sales, $100 gross, $3 fees, $97 net) has one sale
    receipted and one not ($25, missing)."""
    with db.transaction() as session:
        gateway = Connection(kind="paytrace", name="PayTrace", settings={})
        ledger = Connection(kind="sbc", name="SBC", settings={}, is_active=True)
        session.add_all([gateway, ledger])
        session.flush()
        scope = ensure_scope(session, gateway.id, ledger.id, actor="test")
        session.add_all(
            [
                ReconTransaction(
                    scope_id=scope.id,
                    txn_id="5001",
                    kind="sale",
                    status="approved",
                    amount_minor=7500,
                    currency="USD",
                    created_on=date(2026, 11, 10),
                    batch_number="1001",
                    card_brand="visa",
                ),
                ReconTransaction(
                    scope_id=scope.id,
                    txn_id="5002",
                    kind="sale",
                    status="approved",
                    amount_minor=2500,
                    currency="USD",
                    created_on=date(2026, 11, 10),
                    batch_number="1001",
                    card_brand="visa",
                ),
                ReconReceipt(
                    scope_id=scope.id,
                    receipt_id="R1",
                    idempotency_key="paytrace:5001:sale",
                    txn_id="5001",
                    kind="receipt",
                    amount_minor=7500,
                    currency="USD",
                    posted_on=date(2026, 11, 10),
                    reversed=False,
                    customer_id="C1",
                    reference="PT5001",
                ),
                ReconBatch(
                    scope_id=scope.id,
                    batch_number="1001",
                    settled_on=date(2026, 11, 11),
                    gross_minor=10000,
                    fees_minor=300,
                    chargebacks_withheld_minor=0,
                    net_minor=9700,
                    currency="USD",
                    transaction_count=2,
                ),
            ]
        )
        session.add(
            User(email="ann@example.org", display_name="Ann", role="operator", password_hash="x")
        )
        return scope.id
