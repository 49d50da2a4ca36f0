"""Count the store's rows in a loop until a stop file appears (used by tests).

Usage: python store_reader.py STORE STOP_FILE
Prints one count per line.
"""

from __future__ import annotations

import os
import sys

from researchgym.store import Store


def main() -> None:
    path, stop = sys.argv[1], sys.argv[2]
    store = Store(path, auto_compact=None)
    print("ready", flush=True)
    while not os.path.exists(stop):
        n = store.sql("SELECT count(*) AS n FROM steps").column(0)[0].as_py()
        print(n, flush=True)


if __name__ == "__main__":
    main()
