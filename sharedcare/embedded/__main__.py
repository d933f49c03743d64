"""`python -m sharedcare.embedded run | exec`: see the package docstring."""

from __future__ import annotations

import argparse
import subprocess
import sys

from sharedcare.embedded.launch import run
from sharedcare.embedded.processes import Signals, child_wait
from sharedcare.embedded.services import ProfileBusy, ServicesNotAnswering, profile_services


def command_exec(profile: str, command: list[str]) -> int:
    """Run `command` with the profile's services (attached to a running owner's, else started for it and stopped
    after it) and return its exit code."""
    with Signals() as signals:
        try:
            with profile_services(profile) as services:
                if signals.stopping:
                    return 1
                return child_wait(subprocess.Popen(command, env=services.env), signals)  # noqa: S603 - a fixed argument list, no shell
        except (ProfileBusy, ServicesNotAnswering) as error:
            print(f"Not started: {error}.", file=sys.stderr)
            return 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sharedcare.embedded")
    sub = parser.add_subparsers(dest="what", required=True)
    serve = sub.add_parser("run", help="migrate, load the demo, serve with gunicorn + Celery worker + beat")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--profile", default="run")
    execute = sub.add_parser(
        "exec", help="run a command with the profile's services: a running instance's, else its own"
    )
    execute.add_argument("--profile", default="test")
    execute.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    if args.what == "run":
        return run(args.host, args.port, args.profile)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("exec needs a command after --")
    return command_exec(args.profile, command)


if __name__ == "__main__":
    sys.exit(main())
