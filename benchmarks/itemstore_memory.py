"""Memory per stored BEP 44 item: the RSS growth of an ItemStore filled with N mutable
items of a given value size (Linux only; reads /proc/self/status).

    python benchmarks/itemstore_memory.py [--items 700] [--value-size 100]
"""

from __future__ import annotations

import argparse
import gc
import os

from twisted.internet.task import Clock

from twisted_dht.bep44 import Item, SigningKey
from twisted_dht.items import ItemStore


def rssKiB() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=700)
    parser.add_argument("--value-size", type=int, default=100)
    args = parser.parse_args()
    key = SigningKey(bytes(32))
    store = ItemStore(lambda: bytes(20), reactor=Clock(), maxItems=args.items)
    gc.collect()
    before = rssKiB()
    for index in range(args.items):
        # As the put handler makes them: the value, its bencoding, key, salt, signature.
        item = Item.signed(os.urandom(args.value_size), key, 1, salt=index.to_bytes(4, "big"))
        store.put(item, f"10.{index // 65536}.{index // 256 % 256}.{index % 256}")
    gc.collect()
    grown = (rssKiB() - before) * 1024
    payload = args.value_size + 32 + 64 + 4
    print(f"{args.items} mutable items with {args.value_size}-byte values")
    print(f"  RSS growth   {grown / args.items:8.0f} bytes per item")
    print(f"  payload      {payload:8d} bytes per item (value, key, signature, salt)")


if __name__ == "__main__":
    main()
