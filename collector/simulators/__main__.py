"""``python -m collector.simulators foxess|sungrow|solax|sunvec [--port N] [--key K] [--encrypted]``.

Serves the vendor's demo plant on ``--host`` (default 127.0.0.1) and ``--port`` (default 0: a free
port), prints the base URL on stdout and runs until SIGINT / SIGTERM. For ``sungrow`` the demo app
(appkey, access key) and account are printed on stderr, and ``--encrypted`` makes the gateway
refuse plain calls and prints its ``rsa_public_key``. For ``solax`` / ``sunvec`` the demo token and
the dongle (and charger) serial numbers are printed on stderr; ``--key`` replaces the token. The
``solax`` simulator also serves the EV-charger API, so a ``solax_ev`` source points at it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
from collections.abc import Sequence

from collector.simulators import solax, sungrow
from collector.simulators.base import Simulator, serve_forever
from collector.simulators.foxess import DEMO_API_KEY, FoxessSim, demo_plant, demo_quirks


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m collector.simulators", description=__doc__)
    parser.add_argument(
        "vendor", choices=["foxess", "sungrow", "solax", "sunvec"], help="which vendor cloud to simulate"
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=0, help="port to bind (default 0: a free port)")
    parser.add_argument(
        "--key",
        default=None,
        help=f"FoxESS API key (default {DEMO_API_KEY}) or SolaX / Sunvec token (default the demo token)",
    )
    parser.add_argument("--encrypted", action="store_true", help="sungrow: refuse plain calls (RSA/AES mode)")
    args = parser.parse_args(argv)
    sim: Simulator
    if args.vendor == "foxess":
        key = args.key or DEMO_API_KEY
        sim = FoxessSim(demo_plant(), api_keys={key: None}, quirks=demo_quirks(), host=args.host)
    elif args.vendor in ("solax", "sunvec"):
        brand: solax.Brand = "solax" if args.vendor == "solax" else "sunvec"
        sx = solax.demo_sim(brand=brand, host=args.host, token=args.key)
        if brand == "solax":
            print(
                f"token_id={args.key or solax.DEMO_TOKEN} "
                f"wifi_sns={solax.DEMO_HYBRID_WIFI_SN},{solax.DEMO_PV_WIFI_SN} pile_sns={solax.DEMO_PILE_SN}",
                file=sys.stderr,
            )
        else:
            print(
                f"token_id={args.key or solax.DEMO_SUNVEC_TOKEN} wifi_sns={solax.DEMO_SUNVEC_WIFI_SN}",
                file=sys.stderr,
            )
        sim = sx
    else:
        sg = sungrow.demo_sim(encrypted=args.encrypted, host=args.host)
        print(
            f"appkey={sungrow.DEMO_APPKEY} access_key={sungrow.DEMO_ACCESS_KEY} "
            f"user={sungrow.DEMO_USER} password={sungrow.DEMO_PASSWORD}",
            file=sys.stderr,
        )
        if sg.rsa_public_key is not None:
            print(f"rsa_public_key={sg.rsa_public_key}", file=sys.stderr)
        sim = sg

    def announce(url: str) -> None:
        print(url, flush=True)

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve_forever(sim, args.port, announce=announce))
    return 0


if __name__ == "__main__":
    sys.exit(main())
