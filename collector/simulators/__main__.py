"""``python -m collector.simulators foxess [--port N] [--key K]``: run a simulator standalone.

Serves the vendor's demo plant on ``--host`` (default 127.0.0.1) and ``--port`` (default 0: a free
port), prints the base URL on stdout and runs until SIGINT / SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
from collections.abc import Sequence

from collector.simulators.base import serve_forever
from collector.simulators.foxess import DEMO_API_KEY, FoxessSim, demo_plant, demo_quirks


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m collector.simulators", description=__doc__)
    parser.add_argument("vendor", choices=["foxess"], help="which vendor cloud to simulate")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=0, help="port to bind (default 0: a free port)")
    parser.add_argument("--key", default=DEMO_API_KEY, help=f"API key to accept (default {DEMO_API_KEY})")
    args = parser.parse_args(argv)
    sim = FoxessSim(demo_plant(), api_keys={args.key: None}, quirks=demo_quirks(), host=args.host)

    def announce(url: str) -> None:
        print(url, flush=True)

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve_forever(sim, args.port, announce=announce))
    return 0


if __name__ == "__main__":
    sys.exit(main())
