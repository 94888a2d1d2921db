"""The credit packs on sale (settings.CREDIT_PACKS) and how money is written."""

from __future__ import annotations

from dataclasses import dataclass, replace
from decimal import Decimal
from fractions import Fraction

from django.conf import settings

# Stripe amounts are in the currency's smallest unit; for these that unit is whole.
ZERO_DECIMAL_CURRENCIES = frozenset({"bif", "clp", "djf", "gnf", "jpy", "kmf", "krw", "mga"})
_SYMBOLS = {"usd": "$", "eur": "€", "gbp": "£", "cad": "CA$", "aud": "A$"}


class UnknownPack(Exception):
    def __init__(self, pack_id: str) -> None:
        self.pack_id = pack_id
        super().__init__("That credit pack does not exist. Choose one of the packs shown.")


@dataclass(frozen=True)
class CreditPack:
    id: str
    name: str
    credits: int
    price_cents: int
    currency: str
    # Percent saved per credit against the dearest pack in the same currency.
    saving_percent: int = 0

    @property
    def price(self) -> str:
        return format_money(self.price_cents, self.currency)

    @property
    def description(self) -> str:
        return f"{self.credits:,} Mochi Studio credits"


def credit_packs() -> list[CreditPack]:
    packs = [
        CreditPack(
            id=str(pack["id"]),
            name=str(pack["name"]),
            credits=int(pack["credits"]),
            price_cents=int(pack["price_cents"]),
            currency=str(pack["currency"]).lower(),
        )
        for pack in settings.CREDIT_PACKS
    ]
    dearest: dict[str, Fraction] = {}
    for pack in packs:
        unit = Fraction(pack.price_cents, pack.credits)
        dearest[pack.currency] = max(dearest.get(pack.currency, unit), unit)
    return [
        replace(
            pack,
            saving_percent=int(
                (1 - Fraction(pack.price_cents, pack.credits) / dearest[pack.currency]) * 100
            ),
        )
        for pack in packs
    ]


def get_pack(pack_id: str) -> CreditPack:
    for pack in credit_packs():
        if pack.id == pack_id:
            return pack
    raise UnknownPack(pack_id)


def format_money(amount: int, currency: str) -> str:
    """`1800, "usd"` → "$18.00"; amounts are in the currency's smallest unit."""
    currency = currency.lower()
    if currency in ZERO_DECIMAL_CURRENCIES:
        number = f"{amount:,}"
    else:
        number = f"{Decimal(amount) / 100:,.2f}"
    symbol = _SYMBOLS.get(currency)
    return f"{symbol}{number}" if symbol else f"{number} {currency.upper()}"
