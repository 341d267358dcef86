"""First-start data: the demo population's stored cards and a little settled history.

Deterministic for the same ``seed_people``: the same customer profiles (person *n* is
customer ``C{n:05d}``, card chosen by *n*), the same historical sales and refunds, in the
same earlier batches. Only the dates move with the day the sandbox was first started.
"""

from __future__ import annotations

import json
from datetime import timedelta

from ledgerlink.sandbox.paytrace import codes
from ledgerlink.sandbox.paytrace.cards import TEST_CARDS, CardFacts, mask
from ledgerlink.sandbox.paytrace.clock import Clock
from ledgerlink.sandbox.paytrace.config import PayTraceConfig
from ledgerlink.sandbox.paytrace.settlement import FeeSchedule, record_deposit
from ledgerlink.sandbox.paytrace.store import FIRST_BATCH_NUMBER, Store
from ledgerlink.sandbox.people import population

SEEDED_KEY = "seeded"
HISTORY_DAYS_AGO = (30, 20, 10)  # one settled batch each
HISTORY_SALES = 24


def seed(store: Store, config: PayTraceConfig, clock: Clock) -> None:
    if store.meta(SEEDED_KEY):
        return
    now = clock.now()
    expiry_year = clock.today().year + 3
    people = [p for p in population(config.seed_people) if p.has_card_profile]
    cards: dict[str, CardFacts] = {}
    with store.transaction() as db:
        for person in people:
            test_card = TEST_CARDS[person.number % len(TEST_CARDS)]
            card = CardFacts(mask(test_card.number), test_card.card_type, 12, expiry_year)
            cards[person.customer_id] = card
            billing = {
                "name": person.full_name,
                "street_address": person.address_line_1,
                "street_address2": person.address_line_2,
                "city": person.city,
                "state": person.region,
                "zip": person.postal_code,
                "country": person.country,
            }
            db.execute(
                "INSERT INTO customers (customer_id, masked, card_type, exp_month, exp_year,"
                " billing, email, phone, created_at, updated_at) VALUES (?,?,?,?,?,?,?,?,?,?)",
                (
                    person.customer_id,
                    card.masked,
                    card.card_type,
                    card.expiration_month,
                    card.expiration_year,
                    json.dumps(billing, sort_keys=True),
                    person.email,
                    person.phone,
                    now - 40 * 86_400,
                    now - 40 * 86_400,
                ),
            )
        history = people[:HISTORY_SALES]
        for batch_index, days_ago in enumerate(HISTORY_DAYS_AGO):
            batch_number = FIRST_BATCH_NUMBER + batch_index
            settled_at = now - days_ago * 86_400 + 3600
            db.execute(
                "INSERT INTO batches (batch_number, settled_at) VALUES (?, ?)",
                (batch_number, settled_at),
            )
            chunk = history[batch_index :: len(HISTORY_DAYS_AGO)]
            for offset, person in enumerate(chunk):
                card = cards[person.customer_id]
                created = now - days_ago * 86_400 - 3600 * (offset + 1)
                amount = (person.number * 7 % 180 + 20) * 100 + (person.number * 13 % 100)
                base = {
                    "masked": card.masked,
                    "card_type": card.card_type,
                    "exp_month": card.expiration_month,
                    "exp_year": card.expiration_year,
                    "customer_id": person.customer_id,
                    "email": person.email,
                    "billing": {"name": person.full_name, "zip": person.postal_code},
                    "status": codes.STATUS_SETTLED,
                    "batch_number": batch_number,
                    "settled_at": settled_at,
                    "created_by": config.username,
                    "from_ip": "127.0.0.1",
                }
                sale_id = store.insert_transaction(
                    db,
                    {
                        **base,
                        "type": "SALE",
                        "response_code": codes.APPROVED,
                        "amount": amount,
                        "authorized_amount": amount,
                        "approval_message": "  NO  MATCH - Approved and completed",
                        "avs_response": "Zip Match",
                        "fingerprint": card.fingerprint,
                        "invoice_id": f"INV-H{person.number:05d}",
                        "description": "Membership dues",
                        "created_at": created,
                    },
                )
                db.execute(
                    "UPDATE transactions SET approval_code = ? WHERE id = ?",
                    (f"TAS{sale_id % 1000:03d}", sale_id),
                )
                if offset == 0 and batch_index < len(HISTORY_DAYS_AGO) - 1:
                    # A partial refund settled in the next batch.
                    store.insert_transaction(
                        db,
                        {
                            **base,
                            "type": "REFUND",
                            "response_code": codes.REFUNDED,
                            "amount": amount // 4,
                            "authorized_amount": amount // 4,
                            "invoice_id": f"INV-H{person.number:05d}",
                            "description": "Partial refund",
                            "original_id": sale_id,
                            "batch_number": batch_number + 1,
                            "settled_at": now - HISTORY_DAYS_AGO[batch_index + 1] * 86_400 + 3600,
                            "created_at": created + 5 * 86_400,
                        },
                    )
        schedule = FeeSchedule.from_config(config.card_fees)
        for batch_index, days_ago in enumerate(HISTORY_DAYS_AGO):
            settled_on = clock.local(now - days_ago * 86_400 + 3600).date()
            record_deposit(
                db,
                FIRST_BATCH_NUMBER + batch_index,
                schedule,
                settled_on + timedelta(days=config.deposit_delay_days),
            )
        db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (SEEDED_KEY, "1"))
