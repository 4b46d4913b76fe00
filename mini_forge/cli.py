"""`mini-forge <command>`: refiller, api, up.

Settings are loaded and validated once, before anything starts; a user error prints one
line and exits with status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

import redis

from refiller.counter import CounterStoreError
from refiller.pool_writer import CounterWentBackError
from shared.settings import Settings, SettingsError, load_settings

EXIT_USER_ERROR = 2
EXIT_FATAL = 1


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mini-forge", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    commands.add_parser("refiller", help="reserve ranges and keep the Redis pool filled")

    api = commands.add_parser("api", help="serve keys over HTTP")
    api.add_argument("--port", type=int, help="port to listen on (default: PORT)")
    api.add_argument("--workers", type=int, default=1, help="uvicorn worker processes")

    up = commands.add_parser("up", help="start redis (if needed), a refiller and API instances")
    up.add_argument("--api-instances", type=int, default=2, help="API processes (default 2)")
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
        if not 1 <= port <= 65535:
            raise SettingsError(f"--port={port}: must be a port number between 1 and 65535")
        run_api(settings, port, args.workers)
    elif args.command == "up":
        from mini_forge.up import run_up

        return run_up(settings, args.api_instances)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
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
    except KeyboardInterrupt:
        return 0


if __name__ == "__main__":
    sys.exit(main())
