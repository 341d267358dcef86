"""Address normalisation: US addresses through usaddress-scourgify (USPS style: upper
case, standard abbreviations), every other address trimmed, whitespace collapsed and
all-caps or all-lowercase lines given a capital per word; countries as ISO 3166 codes."""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Final, Literal

import pycountry

from ledgerlink.mapping.errors import MappingValueError

_SPACES: Final = re.compile(r"\s+")
_ALIASES: Final[dict[str, str]] = {
    "UK": "GB",
    "GREAT BRITAIN": "GB",
    "ENGLAND": "GB",
    "SCOTLAND": "GB",
    "WALES": "GB",
    "USA": "US",
    "U.S.": "US",
    "U.S.A.": "US",
    "UNITED STATES OF AMERICA": "US",
}


@lru_cache(maxsize=1024)
def country_code(value: str, alpha: Literal[2, 3] = 2) -> str:
    """An ISO 3166-1 code (alpha-2 by default, alpha-3 for Sage 500 ``CountryID``) from a
    code or an English name: ``"usa"`` → ``US``, ``"United Kingdom"`` → ``GB``/``GBR``."""
    text = _SPACES.sub(" ", str(value)).strip()
    if not text:
        raise MappingValueError("the country is empty", "give an ISO 3166 code such as US or GB")
    key = _ALIASES.get(text.upper(), text)
    try:
        country = pycountry.countries.lookup(key)
    except LookupError:
        raise MappingValueError(
            f"{value!r} is not a country ISO 3166 knows",
            "use a two-letter code such as US, GB or DE",
        ) from None
    return str(country.alpha_2 if alpha == 2 else country.alpha_3)


def clean_line(value: str | None) -> str:
    """Trim, collapse whitespace, and case a line that is ALL CAPS or all lowercase as
    ``Each Word``; mixed case is the writer's choice and is kept. Idempotent."""
    text = _SPACES.sub(" ", value or "").strip()
    if text and (text.isupper() or text.islower()):
        text = " ".join(word[:1].upper() + word[1:].lower() for word in text.split(" "))
    return text


_PARTS: Final = ("address_line_1", "address_line_2", "city", "region", "postal_code", "country")


@lru_cache(maxsize=4096)
def normalise_address(
    line1: str, line2: str, city: str, region: str, postal_code: str, country: str
) -> dict[str, str]:
    """One address in normal form, as ``{address_line_1, address_line_2, city, region,
    postal_code, country}`` (country ISO alpha-2; empty country means US). An address with
    no lines at all stays empty, country included, as the member registry keeps it."""
    if not any(part.strip() for part in (line1, line2, city, region, postal_code, country)):
        return dict.fromkeys(_PARTS, "")
    code = country_code(country) if country and country.strip() else "US"
    if code == "US" and line1.strip():
        us = _us_address(line1, line2, city, region, postal_code)
        if us is not None:
            return {**us, "country": code}
    return {
        "address_line_1": clean_line(line1),
        "address_line_2": clean_line(line2),
        "city": clean_line(city),
        "region": _SPACES.sub(" ", region).strip().upper()
        if len(region.strip()) <= 3
        else clean_line(region),
        "postal_code": _SPACES.sub(" ", postal_code).strip().upper(),
        "country": code,
    }


def _us_address(
    line1: str, line2: str, city: str, region: str, postal_code: str
) -> dict[str, str] | None:
    from scourgify import normalize_address_record

    try:
        found = normalize_address_record(
            {
                "address_line_1": line1,
                "address_line_2": line2 or None,
                "city": city,
                "state": region,
                "postal_code": postal_code,
            }
        )
    except Exception:  # scourgify raises several of its own types for unparseable input
        return None
    return {
        "address_line_1": str(found.get("address_line_1") or ""),
        "address_line_2": str(found.get("address_line_2") or ""),
        "city": str(found.get("city") or ""),
        "region": str(found.get("state") or ""),
        "postal_code": str(found.get("postal_code") or ""),
    }
