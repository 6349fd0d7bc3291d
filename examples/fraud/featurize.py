"""Label-free, as-of-time features for every transaction, written byte-identically.

Each feature of a transaction uses only transactions before it (or the same instant),
so nothing from the future leaks in. Features that need fraud labels (merchant risk,
fraud-labelled device neighbours) are NOT computed here: they depend on which rows
are training rows, so train.py computes them out-of-fold.

Portable output for the same reason as generate.py: pure Python, integer arithmetic
or IEEE basic operations, fixed-decimal formatting, "\n" line endings.

Columns (groups as train.py switches them):
  ids/label   txn_id, ts, card_id, merchant_id, device_id, is_fraud
  base        amount, mcc, hour
  velocity    card_txn_1h, card_txn_24h, card_amount_24h, secs_since_prev,
              amount_to_card_mean, card_new_merchant
  device      device_cards, device_txn_24h, card_devices, card_new_device

Usage: python featurize.py [--params params.yaml] [--in data/transactions.csv]
                           [--out data/features.csv]
"""

from __future__ import annotations

import argparse
import csv
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
NEVER = 30 * 86_400  # "no previous transaction" as a large but finite gap

COLUMNS = (
    "txn_id,ts,card_id,merchant_id,device_id,is_fraud,amount,mcc,hour,"
    "card_txn_1h,card_txn_24h,card_amount_24h,secs_since_prev,amount_to_card_mean,"
    "card_new_merchant,device_cards,device_txn_24h,card_devices,card_new_device"
)


@dataclass
class CardState:
    recent: deque[tuple[int, int]] = field(default_factory=deque)  # (ts, cents), long window
    last_ts: int = -1
    count: int = 0
    total_cents: int = 0
    merchants: set[int] = field(default_factory=set)
    devices: set[int] = field(default_factory=set)


@dataclass
class DeviceState:
    recent: deque[int] = field(default_factory=deque)
    cards: set[int] = field(default_factory=set)


def parse_cents(amount: str) -> int:
    whole, _, frac = amount.partition(".")
    return int(whole) * 100 + int((frac + "00")[:2])


def cents_str(cents: int) -> str:
    return f"{cents // 100}.{cents % 100:02d}"


def featurize_rows(rows: list[dict[str, str]], short: int, long: int) -> list[str]:
    cards: dict[int, CardState] = {}
    devices: dict[int, DeviceState] = {}
    out = [COLUMNS]
    for row in rows:
        ts, card_id = int(row["ts"]), int(row["card_id"])
        merchant, device = int(row["merchant_id"]), int(row["device_id"])
        cents = parse_cents(row["amount"])
        card = cards.setdefault(card_id, CardState())
        dev = devices.setdefault(device, DeviceState())
        while card.recent and card.recent[0][0] <= ts - long:
            card.recent.popleft()
        while dev.recent and dev.recent[0] <= ts - long:
            dev.recent.popleft()
        # Counts include the current transaction: a burst shows at its first repeat.
        card_1h = 1 + sum(1 for t, _ in card.recent if t > ts - short)
        card_24h = 1 + len(card.recent)
        amount_24h = cents + sum(c for _, c in card.recent)
        gap = ts - card.last_ts if card.last_ts >= 0 else NEVER
        ratio = cents / (card.total_cents / card.count) if card.count else 1.0
        new_merchant = int(card.count > 0 and merchant not in card.merchants)
        new_device = int(card.count > 0 and device not in card.devices)
        dev.cards.add(card_id)
        card.devices.add(device)
        out.append(
            ",".join(
                (
                    row["txn_id"],
                    row["ts"],
                    row["card_id"],
                    row["merchant_id"],
                    row["device_id"],
                    row["is_fraud"],
                    cents_str(cents),
                    row["mcc"],
                    str((ts % 86_400) // 3600),
                    str(card_1h),
                    str(card_24h),
                    cents_str(amount_24h),
                    str(min(gap, NEVER)),
                    f"{ratio:.4f}",
                    str(new_merchant),
                    str(len(dev.cards)),
                    str(1 + len(dev.recent)),
                    str(len(card.devices)),
                    str(new_device),
                )
            )
        )
        card.recent.append((ts, cents))
        dev.recent.append(ts)
        card.last_ts = ts
        card.count += 1
        card.total_cents += cents
        card.merchants.add(merchant)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", type=Path, default=HERE / "params.yaml")
    parser.add_argument("--in", dest="source", type=Path, default=HERE / "data/transactions.csv")
    parser.add_argument("--out", type=Path, default=HERE / "data" / "features.csv")
    args = parser.parse_args()
    with args.params.open(encoding="utf-8") as handle:
        params = yaml.safe_load(handle)["featurize"]
    with args.source.open(encoding="ascii", newline="") as handle:
        rows = list(csv.DictReader(handle))
    lines = featurize_rows(rows, params["short_window_seconds"], params["long_window_seconds"])
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with args.out.open("w", encoding="ascii", newline="\n") as handle:
        handle.write("\n".join(lines) + "\n")
    print(f"featurize: {len(lines) - 1} rows, {COLUMNS.count(',') + 1} columns -> {args.out}")


if __name__ == "__main__":
    main()
