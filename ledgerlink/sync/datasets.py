"""What can be synchronised and how conflicts are settled."""

from __future__ import annotations

from enum import StrEnum
from typing import Final


class DataSet(StrEnum):
    MEMBER_DETAILS = "member_details"
    TRANSACTIONS = "transactions"
    BALANCES = "balances"
    CARD_PROFILES = "card_profiles"

    @property
    def label(self) -> str:
        return {
            "member_details": "Member details",
            "transactions": "Transaction history",
            "balances": "Account balances",
            "card_profiles": "PayTrace customer profiles",
        }[self.value]


class Policy(StrEnum):
    """Who wins when both sides changed a field since they last agreed."""

    REGISTRY_WINS = "registry_wins"
    LEDGER_WINS = "ledger_wins"
    NEWEST_WINS = "newest_wins"


#: The member fields kept equal with the ledger's customer, in display order.
FIELDS: Final = (
    "name",
    "email",
    "phone",
    "address_line1",
    "address_line2",
    "city",
    "region",
    "postal_code",
    "country",
)
FIELD_LABELS: Final = {
    "name": "Name",
    "email": "E-mail",
    "phone": "Phone",
    "address_line1": "Address line 1",
    "address_line2": "Address line 2",
    "city": "City",
    "region": "State/region",
    "postal_code": "Postal code",
    "country": "Country",
}
DEFAULT_POLICY: Final = Policy.REGISTRY_WINS
