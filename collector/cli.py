"""The `solar-collector` command line (shared/interface.md is its contract).

Exit codes: 0 success, 1 a source or the sink failed, 2 bad usage or bad config.
`--config FILE` (or SOLAR_COLLECTOR_CONFIG) is accepted before or after the
command name.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import sys
from collections.abc import Sequence
from pathlib import Path

from collector import __version__
from collector.config import Config, load_config
from collector.errors import CollectorError, ConfigError
from collector.log import configure, get_logger

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2

log = get_logger("collector.cli")


def _parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--config",
        "-c",
        metavar="FILE",
        default=argparse.SUPPRESS,
        help="the YAML config (default: $SOLAR_COLLECTOR_CONFIG)",
    )
    top = argparse.ArgumentParser(
        prog="solar-collector",
        description="Poll solar-inverter vendor clouds inside their limits and write to InfluxDB.",
        parents=[common],
    )
    top.add_argument("--version", action="version", version=f"solar-collector {__version__}")
    sub = top.add_subparsers(dest="command", metavar="COMMAND")

    run = sub.add_parser("run", parents=[common], help="the daemon (or one round with --once)")
    run.add_argument("--once", action="store_true", help="poll every source once, write, flush, exit")
    run.add_argument(
        "--dry-run", action="store_true", help="with --once: print line protocol on stdout, write nothing"
    )

    sub.add_parser("check", parents=[common], help="validate the config and print the API budget plan")
    sub.add_parser("devices", parents=[common], help="list the sites and devices each source can see")
    sub.add_parser(
        "quota", parents=[common], help="calls used in the last minute / hour / 24 h, and the limits"
    )

    bf = sub.add_parser(
        "backfill", parents=[common], help="fetch history through the vendors' history endpoints"
    )
    bf.add_argument("--source", help="only this source")
    bf.add_argument("--device", help="only this device serial number")
    bf.add_argument("--since", required=True, help="YYYY-MM-DD or ISO date-time, in the site's time zone")
    bf.add_argument("--until", help="exclusive; default now")

    ex = sub.add_parser("export", parents=[common], help="print the embedded store as line protocol")
    ex.add_argument("--since", help="YYYY-MM-DD or ISO date-time (UTC unless it has an offset)")
    ex.add_argument("--until", help="exclusive")
    ex.add_argument("--measurement", help="only this measurement")
    ex.add_argument("--state-dir", help="read this state directory (no config needed; e.g. a demo's)")

    pa = sub.add_parser("parse", help="map a saved vendor response and print line protocol")
    pa.add_argument("--vendor", required=True)
    pa.add_argument("--endpoint", required=True)
    pa.add_argument("--tz", default="UTC", help="the site's time zone (IANA name)")
    pa.add_argument("--request", help="the request body (JSON file) where the response lacks context")
    pa.add_argument("file", help="the response (JSON file, - for stdin)")

    demo = sub.add_parser("demo", parents=[common], help="collect from the built-in vendor simulators")
    demo.add_argument("--seconds", type=float, default=40.0, help="how long to collect (default 40)")
    demo.add_argument("--state-dir", help="keep the demo's data here (default: a temporary directory)")
    return top


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    configure("info", "auto")
    try:
        return _dispatch(args)
    except ConfigError as err:
        print(f"solar-collector: config error: {err}", file=sys.stderr)
        return EXIT_USAGE
    except CollectorError as err:
        log.error("command.failed", command=args.command, error=str(err))
        return EXIT_FAILED
    except KeyboardInterrupt:
        return 130


def _load(args: argparse.Namespace) -> Config:
    config = load_config(getattr(args, "config", None))
    configure(config.log_level, config.log_format, config.secrets)
    for warning in config.warnings:
        log.warning("config.warning", message=warning)
    return config


def _dispatch(args: argparse.Namespace) -> int:
    cmd = args.command
    if cmd == "parse":
        return _parse_cmd(args)
    if cmd == "demo":
        from collector import demo

        return demo.main(args.seconds, args.state_dir)
    if cmd == "export" and args.state_dir:
        return _export(Path(args.state_dir), args)
    config = _load(args)
    if cmd == "check":
        return _check(config)
    if cmd == "quota":
        return _quota(config)
    if cmd == "export":
        return _export(config.state_dir, args)
    if cmd == "run":
        from collector.app import App

        if args.dry_run and not args.once:
            print("solar-collector: --dry-run goes with --once", file=sys.stderr)
            return EXIT_USAGE
        app = App(config, dry_run=args.dry_run)
        return asyncio.run(app.run_once() if args.once else app.run())
    if cmd == "devices":
        return _devices(config)
    if cmd == "backfill":
        return _backfill(config, args)
    raise AssertionError(cmd)


def _devices(config: Config) -> int:
    from collector.app import App

    results = asyncio.run(App(config).list_devices())
    code = EXIT_OK
    for rt, error in results:
        print(f"source {rt.cfg.name} ({rt.spec.title})")
        if error:
            print(f"  error: {error}")
            code = EXIT_FAILED
            continue
        if not rt.devices:
            print("  no devices")
        for d in rt.devices:
            extra = f"  {d.name}" if d.name else ""
            zone = d.timezone or rt.cfg.timezone
            print(f"  site {d.site}  {d.kind} {d.sn}  ({zone}){extra}")
    return code


def _date_arg(text: str, key: str) -> dt.datetime:
    """`YYYY-MM-DD` or an ISO date-time; naive means the site's local time."""
    try:
        return dt.datetime.fromisoformat(text)
    except ValueError as err:
        raise ConfigError(key, f"not a date (YYYY-MM-DD) or ISO date-time: {text!r}") from err


def _backfill(config: Config, args: argparse.Namespace) -> int:
    from collector.app import App

    since = _date_arg(args.since, "--since")
    until = _date_arg(args.until, "--until") if args.until else None
    if args.source is not None and config.source(args.source) is None:
        raise ConfigError("--source", f"no source named {args.source!r} in the config")
    app = App(config)
    return asyncio.run(app.backfill(source=args.source, device=args.device, since=since, until=until))


def _check(config: Config) -> int:
    from collector.plan import format_duration, plan
    from collector.vendors import VENDOR_SPECS, VENDORS

    print(f"config: {config.path}  (state_dir: {config.state_dir})")
    if config.influxdb is None:
        print(f"sink: embedded store in {config.state_dir / 'local.db'} (no `influxdb` section)")
    else:
        ic = config.influxdb
        target = f"bucket {ic.bucket}, org {ic.org}" if ic.api == "v2" else f"database {ic.database}"
        print(f"sink: InfluxDB {ic.api} at {ic.url} ({target})")
    if not config.sources:
        print("no sources: nothing to poll (add one under `sources:`)")
        return EXIT_OK
    bad = []
    for p in plan(config):
        src = next(s for s in config.sources if s.name == p.source)
        spec = VENDOR_SPECS[src.vendor]
        note = "" if src.vendor in VENDORS else "  [client not in this version]"
        per = "per inverter" if p.counted_per == "inverter" else "per account"
        print(f"\nsource {p.source} ({spec.title}, every {format_duration(p.interval)}){note}")
        for w in p.windows:
            shared = (
                f", {w.account_planned:.0f} with the account's other sources"
                if w.account_planned != w.planned
                else ""
            )
            status = "ok" if w.fits else "OVER"
            print(
                f"  {w.window:<10} {w.planned:>7.0f} calls planned{shared} / limit {w.limit:.0f} {per}"
                f"  ({100 * w.account_planned / w.limit:.0f} %)  {status}"
            )
        if src.limits.per_second:
            scope = "per endpoint" if spec.per_second_scope == "endpoint" else per
            print(f"  per_second {src.limits.per_second:g} {scope} (calls are spaced)")
        if p.disabled:
            print(f"  cannot run within these limits at any interval: {', '.join(p.disabled)}")
        if not p.fits:
            idx = src.index
            if "live" in p.disabled or p.min_interval is None:
                msg = "no interval fits: the limits are smaller than one poll needs"
            elif p.disabled:
                msg = (
                    "no interval fits: the limits are smaller than one poll of every stream needs "
                    f"({', '.join(p.disabled)} cannot run; `run` polls live data alone, every "
                    f"{format_duration(max(p.min_interval, p.interval))})"
                )
            else:
                msg = (
                    f"the plan exceeds the vendor's limits; an interval of {format_duration(p.min_interval)} "
                    "or longer would fit"
                )
            bad.append(f"sources[{idx}].interval: {msg}")
    if bad:
        for line in bad:
            print(f"solar-collector: config error: {line}", file=sys.stderr)
        return EXIT_USAGE
    print("\nthe plan fits every limit (live polling keeps 10 % of each limit free)")
    return EXIT_OK


def _quota(config: Config) -> int:
    from collector.budget import BudgetBook
    from collector.clock import SystemClock
    from collector.state import State
    from collector.vendors import VENDOR_SPECS

    state = State(config.state_dir)
    book = BudgetBook(state, SystemClock())
    try:
        for src in config.sources:
            spec = VENDOR_SPECS[src.vendor]
            acct = book.account(spec, src.credentials, src.limits, src.limits_overridden)
            acct.load_all_counters()
            print(f"source {src.name} ({spec.title}), account {acct.key}")
            paused = acct.paused_until()
            if paused is not None:
                when = dt.datetime.fromtimestamp(paused, tz=dt.UTC).isoformat(timespec="seconds")
                print(f"  paused by the vendor until {when} ({acct.pause_reason})")
            usage = acct.usage()
            if not usage:
                print("  no calls recorded")
            for counter, windows in usage.items():
                who = counter.split("/", 1)[1] if "/" in counter else "account"
                parts = [
                    f"{name.replace('per_', 'last ')}: {used}/{limit:.0f}"
                    for name, (used, limit) in windows.items()
                ]
                print(f"  {who}: " + ", ".join(parts))
    finally:
        state.close()
    return EXIT_OK


def _parse_time(text: str, *, key: str) -> int:
    try:
        value = dt.datetime.fromisoformat(text)
    except ValueError as err:
        raise ConfigError(key, f"not a date or ISO date-time: {text!r}") from err
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    return int(value.timestamp())


def _export(state_dir: Path, args: argparse.Namespace) -> int:
    from collector.sinks.local import LocalStore

    path = state_dir / "local.db"
    if not path.exists():
        print(f"solar-collector: no embedded store at {path} (nothing collected yet)", file=sys.stderr)
        return EXIT_FAILED
    since = _parse_time(args.since, key="--since") if args.since else None
    until = _parse_time(args.until, key="--until") if args.until else None
    store = LocalStore(path)
    try:
        out = sys.stdout
        for line in store.export(since=since, until=until, measurement=args.measurement):
            out.write(line + "\n")
    finally:
        store.close()
    return EXIT_OK


def _parse_cmd(args: argparse.Namespace) -> int:
    from collector.vendors import PARSERS

    parser = PARSERS.get((args.vendor, args.endpoint))
    if parser is None:
        known = ", ".join(f"{v}/{e}" for v, e in sorted(PARSERS)) or "none in this version"
        print(
            f"solar-collector: no parser for {args.vendor}/{args.endpoint} (available: {known})",
            file=sys.stderr,
        )
        return EXIT_USAGE
    from collector.schema.mapping import MappingStats

    raw = sys.stdin.read() if args.file == "-" else Path(args.file).read_text()
    request = Path(args.request).read_text() if args.request else None
    stats = MappingStats()
    for point in parser(raw, tz=args.tz, request=request, stats=stats):
        print(point.to_line())
    # A whole record refused is data lost: say why, and fail (issue #7 §4).
    for device, reason, detail in stats.drops:
        print(f"solar-collector: record dropped: device {device}: {detail} ({reason})", file=sys.stderr)
    return EXIT_FAILED if stats.drops else EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
