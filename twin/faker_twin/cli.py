"""`faker-twin`: serve the twin from the command line."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

from faker_twin.constants import COORDINATE_SHAPES
from faker_twin.faults import TwinFaults
from faker_twin.server import FakerTwin

# ------------------------------------------------------------ CLI


def add_twin_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the twin's options: where to listen and one option per fault."""
    defaults = TwinFaults()
    parser.add_argument("--host", default="127.0.0.1", help="interface to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=0, help="port to bind; 0 picks a free one")
    parser.add_argument(
        "--port-file", type=Path, default=None, help="write the bound port here when listening"
    )
    parser.add_argument("--error-rate", type=float, default=defaults.error_rate, help="share of 5xx answers")
    parser.add_argument(
        "--rate-limit-every", type=int, default=defaults.rate_limit_every, help="every Nth request gets 429"
    )
    parser.add_argument(
        "--retry-after", type=int, default=defaults.retry_after_s, help="Retry-After seconds on 429"
    )
    parser.add_argument(
        "--truncate-rate", type=float, default=defaults.truncate_rate, help="share of truncated 200 bodies"
    )
    parser.add_argument("--latency-ms", type=int, default=defaults.latency_ms, help="delay per request")
    parser.add_argument(
        "--bad-record-rate", type=float, default=defaults.bad_record_rate, help="share of bad records"
    )
    parser.add_argument(
        "--coordinates", choices=COORDINATE_SHAPES, default=defaults.coordinates, help="lat/lon payload shape"
    )
    parser.add_argument("--extra-fields", action="store_true", help="add unknown fields to records")
    parser.add_argument(
        "--pii-country-rate",
        type=float,
        default=defaults.pii_country_rate,
        help="share of records whose email is shifted into address.country (exercises the gate)",
    )
    parser.add_argument(
        "--hostile-rate",
        type=float,
        default=defaults.hostile_rate,
        help="share of hostile records: formula-like or invisible-character countries, entries that are not "
        "records, names with invalid UTF-8",
    )


def _faults_from_args(args: argparse.Namespace) -> TwinFaults:
    """TwinFaults from parsed CLI options."""
    return TwinFaults(
        error_rate=args.error_rate,
        rate_limit_every=args.rate_limit_every,
        retry_after_s=args.retry_after,
        truncate_rate=args.truncate_rate,
        latency_ms=args.latency_ms,
        bad_record_rate=args.bad_record_rate,
        coordinates=args.coordinates,
        extra_fields=args.extra_fields,
        pii_country_rate=args.pii_country_rate,
        hostile_rate=args.hostile_rate,
    )


def _write_port_file(path: Path, port: int) -> None:
    """Write the port atomically, so a poller never reads a half-written file."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(f"{port}\n", encoding="utf-8")
    os.replace(tmp, path)


@dataclass
class _StopFlag:
    """Set from a signal handler; a plain flag because locks are not safe inside signal handlers."""

    raised: bool = False
    signum: int = 0

    def __call__(self, signum: int, frame: FrameType | None) -> None:
        """Signal handler."""
        self.raised, self.signum = True, signum


@dataclass
class _SignalHandlers:
    """Installs SIGINT/SIGTERM handlers and restores the previous ones."""

    flag: _StopFlag
    previous: dict[int, Any] = field(default_factory=dict)

    def __enter__(self) -> _StopFlag:
        """Install."""
        for signum in (signal.SIGINT, signal.SIGTERM):
            self.previous[signum] = signal.signal(signum, self.flag)
        return self.flag

    def __exit__(self, *exc_info: object) -> None:
        """Restore."""
        for signum, handler in self.previous.items():
            signal.signal(signum, handler)


def serve_from_args(args: argparse.Namespace) -> int:
    """Serve in the foreground until SIGINT/SIGTERM; returns the process exit code."""
    try:
        faults = _faults_from_args(args)
    except ValueError as exc:
        print(f"faker twin: {exc}", file=sys.stderr, flush=True)
        return 2
    # Handlers first, so a SIGTERM during the pool warm-up still ends in a clean shutdown.
    with _SignalHandlers(_StopFlag()) as flag:
        twin = FakerTwin(args.host, args.port, faults)
        try:
            twin.start()
        except OSError as exc:
            print(f"faker twin: cannot listen on {args.host}:{args.port}: {exc}", file=sys.stderr, flush=True)
            return 1
        try:
            if args.port_file is not None:
                _write_port_file(Path(args.port_file), twin.port)
            print(f"faker twin listening on {twin.url}", flush=True)
            while not flag.raised:
                time.sleep(0.2)
        finally:
            twin.stop()
    return 0


def main(argv: list[str] | None = None) -> int:
    """``faker-twin`` / ``python -m faker_twin``: run the twin from the command line."""
    parser = argparse.ArgumentParser(
        description="Offline deterministic twin of the Faker /api/v2/persons API."
    )
    add_twin_arguments(parser)
    return serve_from_args(parser.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
