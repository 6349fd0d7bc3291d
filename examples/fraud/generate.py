"""Generate synthetic card transactions whose CSV is byte-identical on any machine.

Why this is portable: every random number comes from `random.Random(seed).random()`,
the one method whose sequence Python guarantees across versions and platforms for a
given integer seed (the other helpers such as randint, choice and gauss are not
guaranteed to stay the same). Everything derived from it uses only IEEE 754 basic
operations (+ - * / and sqrt, which are correctly rounded everywhere) and int();
no exp/log from a platform libm, no numpy/pandas, no locale. Amounts are integer
cents written as fixed-decimal strings, timestamps integer seconds.

The world: cards with home devices and favourite merchants; households sharing a
device; public devices (kiosks) used by many cards legitimately; fraud rings that
compromise batches of cards and hit them in bursts from a few shared devices at
colluding merchants; lone fraudsters testing a stolen card then cashing out; and
"friendly" fraud (chargebacks) that looks exactly like normal spending.

Usage: python generate.py [--params params.yaml] [--out data/transactions.csv]
"""

from __future__ import annotations

import argparse
import bisect
import math
import random
from dataclasses import dataclass, field
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
DAY = 86_400

# Merchant categories: (code, name, share of legit spend, typical amount, fraud appeal).
CATEGORIES: tuple[tuple[int, str, int, int, int], ...] = (
    (5411, "grocery", 300, 45, 1),
    (5812, "restaurants", 200, 35, 1),
    (5541, "fuel", 120, 55, 2),
    (5999, "online_retail", 150, 80, 8),
    (5732, "electronics", 50, 320, 20),
    (4722, "travel", 40, 420, 6),
    (5947, "gift_cards", 20, 100, 25),
    (5816, "digital_goods", 50, 20, 15),
    (5912, "pharmacy", 50, 30, 1),
    (5944, "luxury", 20, 650, 12),
)
# Relative activity per hour of day (legit customers sleep; fraudsters less so).
LEGIT_HOURS = (1, 1, 1, 1, 1, 2, 4, 7, 9, 10, 10, 11, 12, 11, 10, 10, 11, 12, 13, 12, 9, 6, 4, 2)
FRAUD_HOURS = (6, 7, 7, 7, 6, 5, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 5, 5, 5, 6, 6, 6)


@dataclass(frozen=True)
class Params:
    seed: int
    n_cards: int
    n_merchants: int
    days: int
    txns_per_card_max: int
    household_share: float
    n_public_devices: int
    public_device_use: float
    risky_merchant_share: float
    n_rings: int
    ring_cards_max: int
    ring_devices_max: int
    n_lone_fraud_cards: int
    n_friendly_fraud: int


@dataclass
class Txn:
    ts: int
    card: int
    merchant: int
    mcc: int
    device: int
    cents: int
    fraud: int


@dataclass
class World:
    rng: random.Random
    p: Params
    merchant_mcc: list[int] = field(default_factory=list)
    merchant_scale: list[int] = field(default_factory=list)
    merchants_by_cat: list[list[int]] = field(default_factory=list)
    risky_merchants: list[int] = field(default_factory=list)
    card_devices: list[list[int]] = field(default_factory=list)
    card_favourites: list[list[int]] = field(default_factory=list)
    card_scale: list[float] = field(default_factory=list)
    next_device: int = 0
    txns: list[Txn] = field(default_factory=list)

    def u(self) -> float:
        return self.rng.random()

    def below(self, n: int) -> int:
        """Uniform integer in [0, n); exact because n is far below 2**53."""
        return int(self.rng.random() * n)

    def pick(self, cumulative: list[int]) -> int:
        """Index drawn with integer weights given as a cumulative list."""
        return bisect.bisect_right(cumulative, self.below(cumulative[-1]))

    def add(self, ts: int, card: int, merchant: int, device: int, cents: int, fraud: int) -> None:
        self.txns.append(Txn(ts, card, merchant, self.merchant_mcc[merchant], device, cents, fraud))

    def new_device(self) -> int:
        self.next_device += 1
        return self.next_device


def cumulative(weights: tuple[int, ...] | list[int]) -> list[int]:
    out, total = [], 0
    for w in weights:
        total += w
        out.append(total)
    return out


LEGIT_CAT_CUM = cumulative([c[2] for c in CATEGORIES])
FRAUD_CAT_CUM = cumulative([c[4] for c in CATEGORIES])
LEGIT_HOUR_CUM = cumulative(LEGIT_HOURS)
FRAUD_HOUR_CUM = cumulative(FRAUD_HOURS)


def heavy_tail(w: World, cap: float) -> float:
    """Pareto(alpha=2) factor >= 0.35 via 1/sqrt(u): sqrt is correctly rounded everywhere."""
    return min(0.35 + 0.65 / math.sqrt(1.0 - w.u()), cap)


def to_cents(amount: float) -> int:
    return max(100, int(amount * 100.0))


def build_merchants(w: World) -> None:
    w.merchants_by_cat = [[] for _ in CATEGORIES]
    for m in range(w.p.n_merchants):
        cat = w.pick(LEGIT_CAT_CUM) if w.u() < 0.7 else w.pick(FRAUD_CAT_CUM)
        w.merchant_mcc.append(CATEGORIES[cat][0])
        w.merchant_scale.append(CATEGORIES[cat][3])
        w.merchants_by_cat[cat].append(m)
        # A few merchants leak card data or collude: rings and lone fraudsters favour them.
        if CATEGORIES[cat][4] >= 6 and w.u() < w.p.risky_merchant_share * 4:
            w.risky_merchants.append(m)


def random_merchant(w: World, cat_cum: list[int]) -> int:
    while True:
        bucket = w.merchants_by_cat[w.pick(cat_cum)]
        if bucket:
            return bucket[w.below(len(bucket))]


def build_cards(w: World) -> None:
    for card in range(w.p.n_cards):
        devices = [w.new_device()]
        if w.u() < 0.3:
            devices.append(w.new_device())
        # Households: a second card reuses a device of an earlier card.
        if card > 0 and w.u() < w.p.household_share:
            devices.append(w.card_devices[w.below(card)][0])
        w.card_devices.append(devices)
        w.card_favourites.append([random_merchant(w, LEGIT_CAT_CUM) for _ in range(6)])
        w.card_scale.append(0.5 + 1.5 * w.u())


def time_of(w: World, day: int, hour_cum: list[int]) -> int:
    return day * DAY + w.pick(hour_cum) * 3600 + w.below(3600)


def legit_amount(w: World, card: int, merchant: int) -> int:
    return to_cents(w.merchant_scale[merchant] * w.card_scale[card] * heavy_tail(w, 25.0))


def add_legit(w: World, public_devices: list[int]) -> None:
    for card in range(w.p.n_cards):
        # Activity varies a lot between cards: u*u skews towards light users.
        n = 1 + int(w.u() * w.u() * w.p.txns_per_card_max * 1.5)
        for _ in range(n):
            if w.u() < 0.8:
                merchant = w.card_favourites[card][w.below(6)]
            else:
                merchant = random_merchant(w, LEGIT_CAT_CUM)
            r = w.u()
            if r < w.p.public_device_use:
                device = public_devices[w.below(len(public_devices))]
            elif r < 0.02:
                device = w.new_device()  # a new phone, a hotel PC: new but honest
            else:
                devices = w.card_devices[card]
                device = devices[w.below(len(devices))]
            ts = time_of(w, w.below(w.p.days), LEGIT_HOUR_CUM)
            w.add(ts, card, merchant, device, legit_amount(w, card, merchant), 0)


def fraud_merchant(w: World, favoured: list[int]) -> int:
    if favoured and w.u() < 0.6:
        return favoured[w.below(len(favoured))]
    return random_merchant(w, FRAUD_CAT_CUM)


def fraud_amount(w: World, merchant: int) -> int:
    return to_cents(w.merchant_scale[merchant] * (1.0 + 2.0 * w.u()) * heavy_tail(w, 6.0))


def add_rings(w: World) -> None:
    """Rings: a few devices, many compromised cards, short bursts, colluding merchants."""
    for _ in range(w.p.n_rings):
        devices = [w.new_device() for _ in range(2 + w.below(w.p.ring_devices_max - 1))]
        favoured = [
            w.risky_merchants[w.below(len(w.risky_merchants))] for _ in range(1 + w.below(3))
        ]
        start = w.below(w.p.days - 10)
        length = 10 + w.below(40)
        for _ in range(4 + w.below(w.p.ring_cards_max - 3)):
            card = w.below(w.p.n_cards)
            device = devices[w.below(len(devices))]
            ts = time_of(w, min(start + w.below(length), w.p.days - 1), FRAUD_HOUR_CUM)
            for _ in range(1 + w.below(3)):
                merchant = fraud_merchant(w, favoured)
                w.add(ts, card, merchant, device, fraud_amount(w, merchant), 1)
                ts += 30 + w.below(900)


def add_lone_fraud(w: World) -> None:
    """A stolen card: a small test purchase, then a quick cash-out from a fresh device."""
    for _ in range(w.p.n_lone_fraud_cards):
        card = w.below(w.p.n_cards)
        device = w.new_device()
        ts = time_of(w, w.below(w.p.days), FRAUD_HOUR_CUM)
        if w.u() < 0.6:
            merchant = random_merchant(w, FRAUD_CAT_CUM)
            w.add(ts, card, merchant, device, 100 + w.below(400), 1)
            ts += 60 + w.below(1200)
        for _ in range(1 + w.below(3)):
            merchant = fraud_merchant(w, w.risky_merchants if w.u() < 0.3 else [])
            w.add(ts, card, merchant, device, fraud_amount(w, merchant), 1)
            ts += 60 + w.below(2400)


def add_friendly_fraud(w: World) -> None:
    """Chargebacks on ordinary purchases: indistinguishable from legit spending."""
    for _ in range(w.p.n_friendly_fraud):
        card = w.below(w.p.n_cards)
        merchant = w.card_favourites[card][w.below(6)]
        device = w.card_devices[card][0]
        ts = time_of(w, w.below(w.p.days), LEGIT_HOUR_CUM)
        w.add(ts, card, merchant, device, legit_amount(w, card, merchant), 1)


def generate(p: Params) -> list[Txn]:
    w = World(rng=random.Random(p.seed), p=p)
    build_merchants(w)
    build_cards(w)
    public_devices = [w.new_device() for _ in range(p.n_public_devices)]
    add_legit(w, public_devices)
    add_rings(w)
    add_lone_fraud(w)
    add_friendly_fraud(w)
    horizon = p.days * DAY
    kept = [t for t in w.txns if t.ts < horizon]
    # Stable sort: ties keep generation order, which is itself deterministic.
    kept.sort(key=lambda t: t.ts)
    return kept


def render(txns: list[Txn]) -> str:
    lines = ["txn_id,ts,card_id,merchant_id,mcc,device_id,amount,is_fraud"]
    for i, t in enumerate(txns):
        amount = f"{t.cents // 100}.{t.cents % 100:02d}"
        lines.append(f"{i},{t.ts},{t.card},{t.merchant},{t.mcc},{t.device},{amount},{t.fraud}")
    return "\n".join(lines) + "\n"


def load_params(path: Path) -> Params:
    with path.open(encoding="utf-8") as handle:
        section = yaml.safe_load(handle)["generate"]
    return Params(**section)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", type=Path, default=HERE / "params.yaml")
    parser.add_argument("--out", type=Path, default=HERE / "data" / "transactions.csv")
    args = parser.parse_args()
    params = load_params(args.params)
    txns = generate(params)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    # newline="\n" so Windows writes the same bytes as Linux.
    with args.out.open("w", encoding="ascii", newline="\n") as handle:
        handle.write(render(txns))
    frauds = sum(t.fraud for t in txns)
    print(f"generate: {len(txns)} transactions, {frauds} fraud ({frauds / len(txns):.3%})")


if __name__ == "__main__":
    main()
