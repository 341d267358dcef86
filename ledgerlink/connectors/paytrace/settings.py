"""The settings a PayTrace connection keeps (non-secret; secrets are in the vault)."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, HttpUrl, field_validator

from ledgerlink.connectors.settings import ConnectorSettings
from ledgerlink.domain.level_three import COMMODITY_CODE, UNIT_OF_MEASURE

ZIP = re.compile(r"^\d{5}(-\d{4})?$")


def _commodity_code(value: str, what: str) -> str:
    if not COMMODITY_CODE.match(value):
        raise ValueError(
            f"{what} {value!r} is not a commodity code: use 1 to 12 letters or digits, not "
            "all zeros (a UNSPSC code such as 43211503)"
        )
    return value


def _unit(value: str, what: str) -> str:
    if not UNIT_OF_MEASURE.match(value):
        raise ValueError(
            f"{what} {value!r} is not a unit of measure: use 1 to 12 letters or digits "
            "(EA for each, HUR for hours, KGM for kilograms)"
        )
    return value.upper()


class CommodityMapping(BaseModel):
    """One line of the Level 3 commodity table: an item code (Sage 500 ItemID, SBC
    product) and the commodity code and unit of measure sent for it."""

    model_config = ConfigDict(extra="forbid")
    item_code: str = Field(min_length=1, max_length=30)
    commodity_code: str
    unit_of_measure: str = "EA"

    @field_validator("item_code")
    @classmethod
    def _item(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("an item code is required on every line of the commodity table")
        return value.strip()

    @field_validator("commodity_code")
    @classmethod
    def _code(cls, value: str) -> str:
        return _commodity_code(value.strip(), "commodity code")

    @field_validator("unit_of_measure")
    @classmethod
    def _unit_of_measure(cls, value: str) -> str:
        return _unit(value.strip() or "EA", "unit of measure")


class PayTraceSettings(ConnectorSettings):
    username: str = Field(default="", max_length=200)
    integrator_id: str = Field(default="", max_length=100)
    environment: Literal["sandbox", "production"] = "sandbox"
    api_base_url: HttpUrl = HttpUrl("https://api.sandbox.paytrace.com")
    #: The ledger connection (SBC or Sage 500) card payments are posted to; empty: the
    #: only active ledger connection.
    post_to_connection_id: int | None = Field(default=None, ge=1)
    #: What happens to the part of a payment above the invoice's open balance.
    overpayment: Literal["on_account", "exception"] = "on_account"
    #: Poll PayTrace's exports (and settlement batches) for payments no push delivered.
    polling: bool = True
    #: Polls are checked every ten seconds, so shorter intervals are not offered.
    poll_interval_seconds: int = Field(default=60, ge=10, le=86_400)
    #: Re-read this far back each poll, so a transaction PayTrace files late is still seen.
    poll_overlap_minutes: int = Field(default=15, ge=0, le=7 * 24 * 60)
    #: Level 3 (purchasing cards): the item codes' commodity codes and units of measure.
    level_three_commodities: list[CommodityMapping] = Field(default_factory=list, max_length=500)
    #: The commodity code of items the table does not list ("": none sent for them).
    level_three_default_commodity_code: str = Field(default="", max_length=12)
    #: The unit of measure of items the table and the ledger give none for.
    level_three_default_unit: str = Field(default="EA", max_length=12)
    #: The ZIP code goods ship from (Level 3 ``source_address``); "": not sent.
    level_three_ship_from_zip: str = Field(default="", max_length=10)

    @field_validator("level_three_default_commodity_code")
    @classmethod
    def _default_code(cls, value: str) -> str:
        return _commodity_code(value.strip(), "the default commodity code") if value.strip() else ""

    @field_validator("level_three_default_unit")
    @classmethod
    def _default_unit(cls, value: str) -> str:
        return _unit(value.strip() or "EA", "the default unit of measure")

    @field_validator("level_three_ship_from_zip")
    @classmethod
    def _zip(cls, value: str) -> str:
        value = value.strip()
        if value and not ZIP.match(value):
            raise ValueError(
                f"ship-from ZIP code {value!r} is not a ZIP code: enter 5 digits or ZIP+4 "
                "(12345 or 12345-6789)"
            )
        return value

    @field_validator("level_three_commodities")
    @classmethod
    def _unique_items(cls, value: list[CommodityMapping]) -> list[CommodityMapping]:
        seen: set[str] = set()
        for mapping in value:
            key = mapping.item_code.casefold()
            if key in seen:
                raise ValueError(
                    f"item code {mapping.item_code!r} is listed twice in the commodity table; "
                    "keep one line per item"
                )
            seen.add(key)
        return value
