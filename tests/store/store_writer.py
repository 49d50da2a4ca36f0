"""Append rows to a store in a loop, printing each completed step (used by tests).

Usage: python store_writer.py STORE N_STEPS CAMPAIGN_ID [AUTO_COMPACT]
"""

from __future__ import annotations

import sys

from store_rows import make_row

from researchgym.store import Store


def main() -> None:
    path, n_steps, campaign_id = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    auto = int(sys.argv[4]) if len(sys.argv) > 4 else 0
    store = Store(path, auto_compact=auto or None, auto_compact_every=max(auto // 2, 1))
    for step in range(n_steps):
        store.append(make_row(campaign_id, step))
        print(step, flush=True)


if __name__ == "__main__":
    main()
