"""The demo feeds, written as daily CSV drops into the lake's landing folders.

- `digits`: scikit-learn's bundled 8x8 digit images (numeric features). Each day gets a
  disjoint sample; some days also carry a few malformed rows, as a real feed does, so the
  quarantine path is exercised on every demo run.
- `support_tickets`: customer-service messages labelled by intent (text and categorical
  features), from a deterministic generator; customer names and e-mails are sensitive columns.
- `penguins`: the Palmer penguins measurements from the `palmerpenguins` package (numeric and
  categorical features with missing values).
"""

from __future__ import annotations

import csv
import random
from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path

import numpy as np

PIXELS = [f"p{i}" for i in range(64)]
HEADER = ["id", "label", *PIXELS]
SEED = 7


def _malformed_rows(day_index: int, next_id: int) -> list[list[str]]:
    """A few broken lines on every other day: a bad number, a missing label, a short line."""
    if day_index % 2:
        return []
    good = ["0"] * 64
    return [
        [str(next_id), "3", "seven", *good[1:]],  # unparseable pixel value
        [str(next_id + 1), "", *good],  # missing label
        [str(next_id + 2), "5", *good[:10]],  # truncated line
    ]


def _write_day(landing: Path, day: date, header: list[str], rows: list[list[str]]) -> None:
    """One landing partition `ds=<day>/part-0.csv`, replacing what a previous call wrote."""
    partition = landing / f"ds={day.isoformat()}"
    partition.mkdir(parents=True, exist_ok=True)
    for old in partition.glob("*.csv"):
        old.unlink()
    with (partition / "part-0.csv").open("w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(header)
        writer.writerows(rows)


def _days(end: date, days: int) -> list[date]:
    if days < 1:
        raise ValueError("days must be at least 1")
    return [end - timedelta(days=days - 1 - i) for i in range(days)]


def write_digits_landing(landing: Path, end: date, days: int) -> dict[str, int]:
    """Write `days` daily partitions ending at `end`; return malformed rows per date."""
    from sklearn.datasets import load_digits

    dates = _days(end, days)
    images, labels = load_digits(return_X_y=True)
    order = np.random.default_rng(SEED).permutation(len(labels))
    malformed: dict[str, int] = {}
    next_bad_id = 1_000_000
    for index, (day, chunk) in enumerate(zip(dates, np.array_split(order, days), strict=True)):
        rows = [[str(i), str(labels[i]), *(str(int(v)) for v in images[i])] for i in chunk]
        bad = _malformed_rows(index, next_bad_id)
        next_bad_id += len(bad)
        _write_day(landing, day, HEADER, rows + bad)
        malformed[day.isoformat()] = len(bad)
    return malformed


# support_tickets: intent -> (share of tickets, message templates). The slots in braces are
# filled from SLOTS; the shares make `account_deletion` and `warranty` rare, as they are.
INTENTS: dict[str, tuple[float, list[str]]] = {
    "refund": (
        0.2,
        [
            "I would like a refund for order {order}",
            "please refund my money for the {product}, order {order}",
            "I returned the {product} {when} and still have not got my money back",
            "how long does a refund take? I sent the {product} back {when}",
            "you promised a refund for order {order} but nothing arrived on my card",
        ],
    ),
    "delivery": (
        0.2,
        [
            "where is my order {order}? it was due {when}",
            "my {product} has not arrived yet, tracking shows no update since {when}",
            "the parcel with order {order} is late",
            "courier says delivered but there is no package at my door",
            "can you tell me when order {order} will be shipped",
        ],
    ),
    "login": (
        0.15,
        [
            "I cannot log in to my account",
            "password reset email never comes",
            "my account is locked after too many login attempts",
            "the app keeps saying wrong password even after a reset {when}",
            "two factor code is not accepted when I sign in",
        ],
    ),
    "billing": (
        0.15,
        [
            "I was charged twice for order {order}",
            "there is an unknown charge on my invoice from {when}",
            "please send me an invoice for order {order}",
            "why did my subscription price go up {when}",
            "the payment for my {product} failed but money was taken",
        ],
    ),
    "product_question": (
        0.12,
        [
            "does the {product} work with batteries?",
            "what size is the {product}, will it fit a small kitchen",
            "is the {product} available in another colour",
            "can I use the {product} outdoors",
            "what is the difference between the {product} and the pro model",
        ],
    ),
    "address_change": (
        0.1,
        [
            "I need to change the delivery address for order {order}",
            "I moved {when}, please update my shipping address",
            "wrong street on order {order}, can you correct the address",
            "please send order {order} to my office address instead",
        ],
    ),
    "warranty": (
        0.05,
        [
            "my {product} stopped working after {months} months, is it under warranty",
            "the {product} broke, how do I make a warranty claim",
            "warranty repair for my {product} please, it will not turn on",
        ],
    ),
    "account_deletion": (
        0.03,
        [
            "please delete my account and all my data",
            "I want to close my account permanently",
            "remove my personal data from your systems under GDPR",
        ],
    ),
}
SLOTS = {
    "product": [
        "kettle",
        "blender",
        "vacuum cleaner",
        "coffee machine",
        "toaster",
        "lamp",
        "headphones",
        "air fryer",
        "desk chair",
        "phone case",
    ],
    "when": [
        "yesterday",
        "last week",
        "on monday",
        "two weeks ago",
        "this morning",
        "three days ago",
    ],
}
OPENERS = ["", "", "", "hi, ", "hello, ", "good morning, ", "hey team, "]
CLOSERS = [
    "",
    "",
    "",
    " thanks",
    " thank you in advance",
    " please help",
    " asap!!",
    ". this is really frustrating",
]
FIRST_NAMES = [
    "Anna",
    "Ben",
    "Chloe",
    "David",
    "Emma",
    "Farid",
    "Grace",
    "Hiro",
    "Ines",
    "Jonas",
    "Kemal",
    "Lea",
    "Mateo",
    "Nora",
    "Olga",
    "Pavel",
    "Quinn",
    "Rosa",
]
LAST_NAMES = [
    "Smith",
    "Garcia",
    "Novak",
    "Kim",
    "Okafor",
    "Rossi",
    "Müller",
    "Dubois",
    "Silva",
    "Jensen",
    "Nakamura",
    "Kowalski",
]
CHANNELS = ["email", "chat", "web_form", "phone_transcript"]
TICKET_HEADER = ["ticket_id", "customer_name", "customer_email", "channel", "message", "intent"]
TICKETS_PER_DAY = 1500
MISROUTED = 0.02  # tickets an agent filed under a random intent, as happens


def _typo(word: str, rng: random.Random) -> str:
    """Swap, drop or double one letter, as hurried typing does."""
    if len(word) < 4:
        return word
    i = rng.randrange(1, len(word) - 1)
    kind = rng.randrange(3)
    if kind == 0:
        return word[:i] + word[i + 1] + word[i] + word[i + 2 :]
    if kind == 1:
        return word[:i] + word[i + 1 :]
    return word[:i] + word[i] + word[i:]


def _message(template: str, rng: random.Random) -> str:
    text = template.format(
        order=rng.randrange(100000, 999999),
        product=rng.choice(SLOTS["product"]),
        when=rng.choice(SLOTS["when"]),
        months=rng.randrange(2, 24),
    )
    words = [_typo(w, rng) if rng.random() < 0.06 else w for w in text.split(" ")]
    text = rng.choice(OPENERS) + " ".join(words) + rng.choice(CLOSERS)
    return text.upper() if rng.random() < 0.03 else text


def support_ticket_rows(day_index: int, count: int) -> list[list[str]]:
    """One day's tickets; the same day index always gives the same rows."""
    rng = random.Random(f"support_tickets-{day_index}")
    intents = list(INTENTS)
    weights = [INTENTS[i][0] for i in intents]
    rows = []
    for n in range(count):
        intent = rng.choices(intents, weights)[0]
        first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
        email = f"{first}.{last}{rng.randrange(100)}@example.com".lower()
        ticket_id = day_index * 1_000_000 + n
        message = _message(rng.choice(INTENTS[intent][1]), rng)
        if rng.random() < MISROUTED:
            intent = rng.choice(intents)
        rows.append([str(ticket_id), f"{first} {last}", email, rng.choice(CHANNELS), message,
                     intent])  # fmt: skip
    return rows


def write_support_tickets_landing(landing: Path, end: date, days: int) -> dict[str, int]:
    """Write `days` daily partitions of tickets ending at `end`; return rows per date."""
    written = {}
    for day in _days(end, days):
        rows = support_ticket_rows(day.toordinal(), TICKETS_PER_DAY)
        _write_day(landing, day, TICKET_HEADER, rows)
        written[day.isoformat()] = len(rows)
    return written


PENGUIN_HEADER = ["id", "species", "island", "bill_length_mm", "bill_depth_mm",
                  "flipper_length_mm", "body_mass_g", "sex", "year"]  # fmt: skip


def write_penguins_landing(landing: Path, end: date, days: int) -> dict[str, int]:
    """The 344 Palmer penguins, split over `days` daily partitions ending at `end`."""
    import pandas as pd
    from palmerpenguins import load_penguins

    dates = _days(end, days)
    table = load_penguins()
    rows = [
        [str(i + 1), *("" if pd.isna(v) else str(v) for v in record)]
        for i, record in enumerate(table[PENGUIN_HEADER[1:]].itertuples(index=False))
    ]
    order = np.random.default_rng(SEED).permutation(len(rows))
    written = {}
    for day, chunk in zip(dates, np.array_split(order, days), strict=True):
        _write_day(landing, day, PENGUIN_HEADER, [rows[i] for i in sorted(chunk)])
        written[day.isoformat()] = len(chunk)
    return written


# name -> (writer, default number of days)
DEMOS: dict[str, tuple[Callable[[Path, date, int], dict[str, int]], int]] = {
    "digits": (write_digits_landing, 2),
    "support_tickets": (write_support_tickets_landing, 2),
    "penguins": (write_penguins_landing, 1),
}
