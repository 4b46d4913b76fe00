"""`mini-forge <command>`: refiller, api, up, status, loadtest, analyze.

Settings are loaded and validated once, before anything starts; a user error prints one
line and exits with status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import redis

from refiller.counter import CounterStoreError, StopRequestedError
from refiller.pool_writer import CounterWentBackError
from shared.settings import Settings, SettingsError, check_port, load_settings

EXIT_USER_ERROR = 2
EXIT_FATAL = 1


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mini-forge", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    commands.add_parser("refiller", help="reserve ranges and keep the Redis pool filled")

    api = commands.add_parser("api", help="serve keys over HTTP")
    api.add_argument("--port", type=int, help="port to listen on (default: PORT)")
    api.add_argument("--workers", type=int, default=1, help="uvicorn worker processes")

    status = commands.add_parser("status", help="show the pool, the counter and the keyspace")
    output = status.add_mutually_exclusive_group()
    output.add_argument("--json", action="store_true", help="print JSON for scripts")
    output.add_argument("--watch", action="store_true", help="refresh live until Ctrl-C")
    status.add_argument("--interval", type=float, default=1.0, help="--watch refresh seconds")

    up = commands.add_parser("up", help="start redis (if needed), a refiller and API instances")
    up.add_argument("--api-instances", type=int, default=2, help="API processes (default 2)")

    loadtest = commands.add_parser(
        "loadtest", help="ramp virtual users against /get-key, like k6_load_test.js"
    )
    loadtest.add_argument(
        "--url", action="append", dest="urls", metavar="URL",
        help="an API instance; repeat for several (default: 127.0.0.1 ports 8080, 8081, 8082)",
    )  # fmt: skip
    loadtest.add_argument(
        "--stages", metavar="DURATION:VUS,...", help="default 30s:50,30s:1000,30s:2000,30s:0"
    )
    loadtest.add_argument(
        "--scale", type=float, default=1.0,
        help="multiply every stage's duration and VUs, e.g. 0.1 for a quick run",
    )  # fmt: skip
    loadtest.add_argument("--keys-file", type=Path, help="write every key received here")
    loadtest.add_argument(
        "--timeout", type=float, default=10.0, help="seconds per request (default 10)"
    )

    analyze = commands.add_parser("analyze", help="check a file of keys for duplicates")
    analyze.add_argument("file", type=Path, help="one key per line, e.g. results.log")
    return parser


def _run(args: argparse.Namespace, settings: Settings) -> int:
    from shared.logs import setup_logging

    setup_logging(settings)
    if args.command == "refiller":
        from refiller.process import run_refiller

        run_refiller(settings)
    elif args.command == "api":
        from api.server import run_api

        if args.workers < 1:
            raise SettingsError(f"--workers={args.workers}: must be at least 1")
        port = settings.PORT if args.port is None else args.port
        problem = check_port(port)
        if problem:
            raise SettingsError(f"--port={port}: {problem}")
        run_api(settings, port, args.workers)
    elif args.command == "status":
        from mini_forge.status import run_status

        if args.interval <= 0:
            raise SettingsError(f"--interval={args.interval}: must be positive")
        return run_status(settings, as_json=args.json, watch=args.watch, interval=args.interval)
    elif args.command == "up":
        from mini_forge.up import run_up

        if args.api_instances < 1:
            raise SettingsError(f"--api-instances={args.api_instances}: must be at least 1")
        return run_up(settings, args.api_instances)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    # These two only talk to a running system or read a file: they need no settings.
    if args.command == "loadtest":
        from mini_forge.loadtest import run_loadtest

        return run_loadtest(args.urls, args.stages, args.scale, args.keys_file, args.timeout)
    if args.command == "analyze":
        from mini_forge.analyze import analyze_file

        return analyze_file(args.file)
    try:
        settings = load_settings()
        return _run(args, settings)
    except SettingsError as error:
        print(f"mini-forge: configuration error: {error}", file=sys.stderr)
        return EXIT_USER_ERROR
    except CounterStoreError as error:
        print(f"mini-forge: {error}", file=sys.stderr)
        return EXIT_USER_ERROR
    except CounterWentBackError as error:
        print(f"mini-forge: {error}", file=sys.stderr)
        return EXIT_FATAL
    except redis.RedisError as error:
        print(f"mini-forge: REDIS_URL does not lead to a usable redis: {error}", file=sys.stderr)
        return EXIT_FATAL
    except (KeyboardInterrupt, StopRequestedError):
        return 0


if __name__ == "__main__":
    sys.exit(main())
