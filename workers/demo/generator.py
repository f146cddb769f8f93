"""A synthetic judgment book: plaintiffs, judgments and what a vendor knows of each debtor.

Deterministic for a seed (Faker and :class:`random.Random` are both seeded), so a demo
and its test see the same book every time. The shape follows a New York collections
practice: a few dozen creditors (landlords, medical groups, credit unions, contractors)
each holding several judgments from the NYC civil courts and the suburban county courts;
debtors are mostly people, some small businesses; amounts are skewed (many small
judgments, a few large ones).

Each judgment also gets a :class:`DebtorProfile`: the contacts and assets an enrichment
vendor would report. Profiles are drawn so the book exercises every enforcement path:
some debtors have a bank account, some an employer, some property, some nothing at all.
No real person is described: names and addresses come from Faker, phone numbers use the
555-01xx fictional range, and email domains are the reserved example.* domains.
"""

from __future__ import annotations

import csv
import random
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Literal

from faker import Faker
from pydantic import BaseModel, ConfigDict, Field

from workers.intake.simplicity import COLUMNS

# The demo writes exactly the export the Simplicity importer reads.
CSV_COLUMNS: tuple[str, ...] = COLUMNS

# (county, NYC civil court suffix or None, court name)
COURTS: tuple[tuple[str, str | None, str], ...] = (
    ("Kings", "KI", "Civil Court of the City of New York, Kings County"),
    ("Queens", "QU", "Civil Court of the City of New York, Queens County"),
    ("New York", "NY", "Civil Court of the City of New York, New York County"),
    ("Bronx", "BX", "Civil Court of the City of New York, Bronx County"),
    ("Richmond", "RI", "Civil Court of the City of New York, Richmond County"),
    ("Nassau", None, "Nassau County District Court"),
    ("Suffolk", None, "Suffolk County District Court"),
    ("Westchester", None, "Westchester County Supreme Court"),
)

PLAINTIFF_KINDS: tuple[str, ...] = (
    "{last} Realty LLC",
    "{last} Property Management",
    "{last} Medical Group PC",
    "{city} Federal Credit Union",
    "{last} & {last2} Contracting Corp",
    "{last} Auto Sales Inc",
    "{last} Dental Associates",
    "{city} Supply Co",
)

BANKS: tuple[str, ...] = (
    "Chase",
    "Citibank",
    "TD Bank",
    "Capital One",
    "M&T Bank",
    "Bank of America",
    "Santander",
    "Apple Bank",
)

PRIORITIES: tuple[tuple[str, int], ...] = (
    ("urgent", 5),
    ("high", 20),
    ("normal", 55),
    ("low", 15),
    ("on_hold", 5),
)


class Contact(BaseModel):
    model_config = ConfigDict(frozen=True)

    contact_type: Literal["phone", "email", "address"]
    value: str
    confidence: Decimal = Field(ge=0, le=1)
    is_verified: bool = False


class Asset(BaseModel):
    model_config = ConfigDict(frozen=True)

    asset_type: Literal["bank", "employer", "real_property", "vehicle"]
    description: str
    institution: str | None = None
    estimated_value: Decimal | None = None
    confidence: Decimal = Field(ge=0, le=1)


class DebtorProfile(BaseModel):
    """What a vendor reports for one debtor (the demo's enrichment bundle)."""

    model_config = ConfigDict(frozen=True)

    contacts: tuple[Contact, ...] = ()
    assets: tuple[Asset, ...] = ()
    adverse: tuple[str, ...] = ()


class BookRow(BaseModel):
    """One line of the Simplicity export, plus the debtor's profile (not in the CSV)."""

    model_config = ConfigDict(frozen=True)

    plaintiff_name: str
    plaintiff_email: str
    plaintiff_phone: str
    plaintiff_address: str
    plaintiff_city: str
    plaintiff_state: str
    plaintiff_zip: str
    debtor_name: str
    debtor_type: Literal["person", "organization"]
    case_number: str
    court: str
    county: str
    state: str
    judgment_amount: Decimal
    judgment_date: date
    priority: str
    profile: DebtorProfile

    def csv_record(self) -> dict[str, str]:
        values = self.model_dump(exclude={"profile"})
        return {k: str(values[k]) for k in CSV_COLUMNS}


def _phone(rng: random.Random) -> str:
    return f"({rng.choice((212, 347, 516, 631, 718, 914, 917))}) 555-01{rng.randint(0, 99):02d}"


def _amount(rng: random.Random) -> Decimal:
    # log-normal around $4k, clipped to what civil courts actually award
    value = min(max(rng.lognormvariate(8.3, 1.0), 650.0), 180_000.0)
    return Decimal(str(round(value, 2)))


def _profile(rng: random.Random, fake: Faker, debtor_type: str) -> DebtorProfile:
    contacts: list[Contact] = []
    assets: list[Asset] = []
    if rng.random() < 0.8:
        contacts.append(
            Contact(
                contact_type="phone",
                value=_phone(rng),
                confidence=Decimal(str(round(rng.uniform(0.4, 0.99), 2))),
                is_verified=rng.random() < 0.3,
            )
        )
    if rng.random() < 0.5:
        contacts.append(
            Contact(
                contact_type="email",
                value=fake.safe_email(),
                confidence=Decimal(str(round(rng.uniform(0.3, 0.95), 2))),
            )
        )
    if rng.random() < 0.9:
        contacts.append(
            Contact(
                contact_type="address",
                value=f"{fake.street_address()}, {fake.city()}, NY {fake.zipcode_in_state('NY')}",
                confidence=Decimal(str(round(rng.uniform(0.5, 0.99), 2))),
                is_verified=rng.random() < 0.5,
            )
        )
    # Asset mix: roughly a third have a bank, a third an employer (people only), a few
    # own a car or real property, and about a quarter have nothing at all.
    if rng.random() < 0.38:
        bank = rng.choice(BANKS)
        assets.append(
            Asset(
                asset_type="bank",
                description=f"{bank} checking ending {rng.randint(1000, 9999)}",
                institution=bank,
                estimated_value=Decimal(str(round(rng.uniform(150, 25_000), 2))),
                confidence=Decimal(str(round(rng.uniform(0.5, 0.95), 2))),
            )
        )
    if debtor_type == "person" and rng.random() < 0.35:
        employer = fake.company()
        assets.append(
            Asset(
                asset_type="employer",
                description=f"Employed at {employer}",
                institution=employer,
                estimated_value=Decimal(str(rng.randrange(28_000, 140_000, 1000))),
                confidence=Decimal(str(round(rng.uniform(0.5, 0.95), 2))),
            )
        )
    if rng.random() < 0.12:
        assets.append(
            Asset(
                asset_type="vehicle",
                description=f"{rng.randint(2008, 2024)} {rng.choice(('Honda', 'Toyota', 'Ford'))}",
                estimated_value=Decimal(str(rng.randrange(3_000, 38_000, 500))),
                confidence=Decimal(str(round(rng.uniform(0.5, 0.9), 2))),
            )
        )
    if rng.random() < 0.08:
        assets.append(
            Asset(
                asset_type="real_property",
                description=f"{fake.street_address()}, {fake.city()}, NY",
                estimated_value=Decimal(str(rng.randrange(250_000, 1_400_000, 5_000))),
                confidence=Decimal(str(round(rng.uniform(0.6, 0.95), 2))),
            )
        )
    adverse = ("bankruptcy_filing",) if rng.random() < 0.06 else ()
    return DebtorProfile(contacts=tuple(contacts), assets=tuple(assets), adverse=adverse)


def generate_book(cases: int, seed: int = 7) -> list[BookRow]:
    """``cases`` judgments for about ``cases / 4`` plaintiffs; the same for the same seed."""
    if cases < 1:
        raise ValueError("cases must be at least 1")
    rng = random.Random(seed)
    fake = Faker("en_US")
    fake.seed_instance(seed)

    plaintiffs: list[dict[str, str]] = []
    for _ in range(max(1, min(cases, (cases + 3) // 4))):
        pattern = rng.choice(PLAINTIFF_KINDS)
        name = pattern.format(last=fake.last_name(), last2=fake.last_name(), city=fake.city())
        zip_code = fake.zipcode_in_state("NY")
        plaintiffs.append(
            {
                "plaintiff_name": name,
                "plaintiff_email": fake.safe_email(),
                "plaintiff_phone": _phone(rng),
                "plaintiff_address": fake.street_address(),
                "plaintiff_city": fake.city(),
                "plaintiff_state": "NY",
                "plaintiff_zip": zip_code,
            }
        )

    today = date(2026, 11, 1)
    weights = [w for _p, w in PRIORITIES]
    creditor_weights = [1.0 / (k + 1) for k in range(len(plaintiffs))]
    rows: list[BookRow] = []
    used_numbers: set[str] = set()
    for _ in range(cases):
        # A few creditors hold most of the book (Zipf-like weights).
        plaintiff = rng.choices(plaintiffs, creditor_weights)[0]
        county, suffix, court = rng.choice(COURTS)
        judgment_date = today - timedelta(days=rng.randint(60, 12 * 365))
        year = judgment_date.year % 100
        while True:
            if suffix:
                number = f"CV-{rng.randint(1, 99_999):06d}-{year:02d}/{suffix}"
            else:
                number = f"{county[:3].upper()}-{judgment_date.year}-{rng.randint(1, 99_999):05d}"
            if number not in used_numbers:
                used_numbers.add(number)
                break
        debtor_type: Literal["person", "organization"] = (
            "organization" if rng.random() < 0.18 else "person"
        )
        debtor_name = fake.company() if debtor_type == "organization" else fake.name()
        rows.append(
            BookRow(
                **plaintiff,
                debtor_name=debtor_name,
                debtor_type=debtor_type,
                case_number=number,
                court=court,
                county=county,
                state="NY",
                judgment_amount=_amount(rng),
                judgment_date=judgment_date,
                priority=rng.choices([p for p, _w in PRIORITIES], weights)[0],
                profile=_profile(rng, fake, debtor_type),
            )
        )
    return rows


def write_csv(rows: list[BookRow], path: Path) -> Path:
    """Write the rows as a Simplicity export (header line, UTF-8, comma-separated)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(CSV_COLUMNS))
        writer.writeheader()
        for row in rows:
            writer.writerow(row.csv_record())
    return path
