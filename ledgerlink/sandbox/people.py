"""The demo population: the same people across the member registry and all three systems.

Deterministic (seeded), so every sandbox and the demo agree on who exists without talking
to each other: person *n* is member ``M{n:05d}``, Sage 500 customer ``C{n:05d}``, an SBC
contact for some *n* and a PayTrace customer profile for others. The overlap is chosen to
exercise linking: exact matches, near matches (typos, changed e-mail) and people who
exist in one system only.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import date, timedelta

FIRST_NAMES = [
    "Ada",
    "Alan",
    "Amara",
    "Ana",
    "Ben",
    "Carla",
    "Chen",
    "Dana",
    "Diego",
    "Elena",
    "Emeka",
    "Farah",
    "Grace",
    "Hannah",
    "Ines",
    "Ivan",
    "Jamal",
    "Jia",
    "Kai",
    "Kofi",
    "Lara",
    "Leo",
    "Lucia",
    "Maya",
    "Mei",
    "Nadia",
    "Noah",
    "Olga",
    "Omar",
    "Priya",
    "Rafael",
    "Rosa",
    "Sam",
    "Sofia",
    "Tariq",
    "Tom",
    "Uma",
    "Victor",
    "Wen",
    "Yara",
    "Zoe",
]
LAST_NAMES = [
    "Adams",
    "Baker",
    "Castillo",
    "Dubois",
    "Edwards",
    "Fischer",
    "Garcia",
    "Haddad",
    "Ibrahim",
    "Jensen",
    "Kowalski",
    "Lambert",
    "Moreau",
    "Nakamura",
    "Okafor",
    "Patel",
    "Quinn",
    "Rossi",
    "Schmidt",
    "Tanaka",
    "Usman",
    "Varga",
    "Walker",
    "Xu",
    "Yilmaz",
    "Zimmerman",
    "Brennan",
    "Costa",
    "Novak",
    "Ortiz",
]
STREETS = [
    "Maple Ave",
    "Oak St",
    "Pine Rd",
    "Cedar Ln",
    "Elm St",
    "Lakeview Dr",
    "Hillcrest Rd",
    "Park Pl",
    "River Rd",
    "Sunset Blvd",
    "Washington St",
    "Lincoln Ave",
    "Church St",
    "Mill Rd",
    "Spring St",
]
CITIES = (
    ("Portland", "OR", "97201"),
    ("Austin", "TX", "73301"),
    ("Madison", "WI", "53703"),
    ("Raleigh", "NC", "27601"),
    ("Boulder", "CO", "80302"),
    ("Burlington", "VT", "05401"),
    ("Savannah", "GA", "31401"),
    ("Tucson", "AZ", "85701"),
    ("Ann Arbor", "MI", "48104"),
    ("Providence", "RI", "02903"),
)
#: Area codes of those cities; numbers are 555-01xx, reserved for fiction but valid.
AREA_CODES = {
    "Portland": "503",
    "Austin": "512",
    "Madison": "608",
    "Raleigh": "919",
    "Boulder": "303",
    "Burlington": "802",
    "Savannah": "912",
    "Tucson": "520",
    "Ann Arbor": "734",
    "Providence": "401",
}
MEMBERSHIP_TYPES = ("Individual", "Student", "Family", "Corporate", "Life")


@dataclass(frozen=True, slots=True)
class Person:
    number: int
    first_name: str
    last_name: str
    email: str
    phone: str
    address_line_1: str
    address_line_2: str
    city: str
    region: str
    postal_code: str
    country: str
    membership_type: str
    joined_on: date
    in_sbc: bool  # exists as an SBC contact
    has_card_profile: bool  # has a PayTrace customer profile
    sbc_name_variant: str | None  # SBC spells the name differently (a near match)

    @property
    def member_number(self) -> str:
        return f"M{self.number:05d}"

    @property
    def customer_id(self) -> str:
        """Sage 500 CustID (varchar(12)) and PayTrace customer_id."""
        return f"C{self.number:05d}"

    @property
    def full_name(self) -> str:
        return f"{self.first_name} {self.last_name}"


def population(count: int = 240, seed: int = 500) -> list[Person]:
    """``count`` people, identical for the same ``count`` and ``seed``."""
    rng = random.Random(seed)
    people = []
    for number in range(1, count + 1):
        first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
        city, region, postal = rng.choice(CITIES)
        in_sbc = number % 3 != 0  # two in three are SBC contacts
        variant = None
        if in_sbc and number % 17 == 0:
            variant = f"{first[0]}. {last}"  # "A. Patel": a near match for linking
        people.append(
            Person(
                number=number,
                first_name=first,
                last_name=last,
                email=f"{first.lower()}.{last.lower()}{number}@example.org",
                phone=_phone(city, rng.randint(100, 999), rng.randint(1000, 9999)),
                address_line_1=f"{rng.randint(1, 9999)} {rng.choice(STREETS)}",
                address_line_2="" if rng.random() < 0.8 else f"Apt {rng.randint(1, 40)}",
                city=city,
                region=region,
                postal_code=postal,
                country="US",
                membership_type=rng.choice(MEMBERSHIP_TYPES),
                joined_on=date(2015, 1, 1) + timedelta(days=rng.randint(0, 3650)),
                in_sbc=in_sbc,
                has_card_profile=number % 4 in (1, 2),  # half have a stored card
                sbc_name_variant=variant,
            )
        )
    return people


def _phone(city: str, _exchange: int, line: int) -> str:
    """A fictional but well-formed number (``+1 503 555 0143``); the two draws keep the
    seeded sequence of every later field unchanged."""
    return f"+1 {AREA_CODES[city]} 555 01{line % 100:02d}"
