"""A small synthetic sales dataset, generated so that the service has something to serve at once.

Deterministic: the same seed gives the same rows on every machine and every Python version (only
``random.Random.random()`` is used, whose sequence Python keeps stable), so every replica of the
service starts with identical demo data and tests can rely on its numbers. Nothing is downloaded.
"""

from __future__ import annotations

import datetime
import random
from collections.abc import Sequence
from typing import TypeVar

import pyarrow

__all__ = ["demo_tables"]

_T = TypeVar("_T")

_COUNTRIES = ("US", "DE", "CZ", "FR", "GB", "JP", "BR", "IN", "CA", "AU")
_SEGMENTS = ("consumer", "small business", "enterprise")
_FIRST = (
    "Ada",
    "Bruno",
    "Chloe",
    "Dmitri",
    "Elena",
    "Farid",
    "Greta",
    "Hiro",
    "Ines",
    "Jonas",
    "Kira",
    "Luca",
)
_LAST = ("Novak", "Smith", "Tanaka", "Dubois", "Silva", "Kumar", "Brown", "Meyer", "Rossi", "Walsh")
# how often an order is for a product of each category
_CATEGORY_WEIGHTS = {"hardware": 0.6, "software": 0.32, "services": 0.08}
_PRODUCTS: dict[str, tuple[tuple[str, float], ...]] = {
    "hardware": (
        ("Laptop 14", 1099.0),
        ("Laptop 16", 1499.0),
        ("Monitor 27", 329.0),
        ("Keyboard", 79.0),
        ("Mouse", 39.0),
        ("Docking station", 189.0),
    ),
    "software": (
        ("Analytics seat", 420.0),
        ("Dashboard pack", 150.0),
        ("Data connector", 260.0),
        ("Report scheduler", 90.0),
    ),
    "services": (
        ("Onboarding", 1200.0),
        ("Training day", 800.0),
        ("Support plan", 540.0),
        ("Architecture review", 2400.0),
    ),
}
_DISCOUNTS = (0.0, 0.0, 0.0, 0.05, 0.1, 0.2)
_YEAR_START = datetime.date(2024, 1, 1)


def _pick(rng: random.Random, items: Sequence[_T]) -> _T:
    return items[int(rng.random() * len(items))]


def _weighted(rng: random.Random, weights: dict[str, float]) -> str:
    point = rng.random() * sum(weights.values())
    for key, weight in weights.items():
        point -= weight
        if point < 0:
            return key
    return key


def _between(rng: random.Random, low: int, high: int) -> int:
    """A whole number in [low, high]."""
    return low + int(rng.random() * (high - low + 1))


def demo_tables(seed: int = 20240101, customers: int = 250, orders: int = 5000) -> dict[str, pyarrow.Table]:
    """Tables ``customers``, ``products`` and ``orders`` (2024) of a small sales business."""
    rng = random.Random(seed)

    customer_rows = [
        {
            "customer_id": i,
            "name": f"{_pick(rng, _FIRST)} {_pick(rng, _LAST)}",
            "country": _pick(rng, _COUNTRIES),
            "segment": _pick(rng, _SEGMENTS),
            "signup_date": datetime.date(2019, 1, 1) + datetime.timedelta(days=_between(rng, 0, 5 * 365)),
        }
        for i in range(1, customers + 1)
    ]
    products = [
        (product_id, name, category, price)
        for product_id, (category, name, price) in enumerate(
            ((category, name, price) for category, items in _PRODUCTS.items() for name, price in items), 1
        )
    ]
    product_rows = [
        {"product_id": product_id, "name": name, "category": category, "unit_price": price}
        for product_id, name, category, price in products
    ]
    order_rows = []
    for order_id in range(1, orders + 1):
        category = _weighted(rng, _CATEGORY_WEIGHTS)
        product_id, _, _, unit_price = _pick(rng, [p for p in products if p[2] == category])
        quantity = _between(rng, 1, 10)
        discount = _pick(rng, _DISCOUNTS)
        order_rows.append(
            {
                "order_id": order_id,
                "order_date": _YEAR_START + datetime.timedelta(days=_between(rng, 0, 365)),
                "customer_id": _between(rng, 1, customers),
                "product_id": product_id,
                "quantity": quantity,
                "unit_price": unit_price,
                "discount": discount,
                "amount": round(quantity * unit_price * (1 - discount), 2),
            }
        )

    return {
        "customers": pyarrow.Table.from_pylist(
            customer_rows,
            schema=pyarrow.schema(
                [
                    ("customer_id", pyarrow.int32()),
                    ("name", pyarrow.string()),
                    ("country", pyarrow.string()),
                    ("segment", pyarrow.string()),
                    ("signup_date", pyarrow.date32()),
                ]
            ),
        ),
        "products": pyarrow.Table.from_pylist(
            product_rows,
            schema=pyarrow.schema(
                [
                    ("product_id", pyarrow.int32()),
                    ("name", pyarrow.string()),
                    ("category", pyarrow.string()),
                    ("unit_price", pyarrow.float64()),
                ]
            ),
        ),
        "orders": pyarrow.Table.from_pylist(
            order_rows,
            schema=pyarrow.schema(
                [
                    ("order_id", pyarrow.int64()),
                    ("order_date", pyarrow.date32()),
                    ("customer_id", pyarrow.int32()),
                    ("product_id", pyarrow.int32()),
                    ("quantity", pyarrow.int32()),
                    ("unit_price", pyarrow.float64()),
                    ("discount", pyarrow.float64()),
                    ("amount", pyarrow.float64()),
                ]
            ),
        ),
    }
