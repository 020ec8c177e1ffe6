"""``musicenv explore``: start the explore app's Streamlit server, on localhost only by default.

Usage::

    musicenv explore [--world FOLDER] [--checkpoint-dir DIR] [--port P] [--address HOST]

It runs ``python -m streamlit run musicenv/explore/app.py`` with ``--server.address 127.0.0.1``
(another ``--address`` exposes the app to the network: it has no login), ``--server.port P``, and
headless (no browser opened; open the printed URL). The world and checkpoint folder reach the app
through the environment variables of :class:`musicenv.explore.data.Settings`. Needs the ``app``
extra: ``pip install "musicenv[app]"``.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import signal
import subprocess
import sys
from pathlib import Path

from musicenv.explore.data import CHECKPOINT_DIR_ENV, DEFAULT_WORLD, WORLD_ENV

APP = Path(__file__).with_name("app.py")
DEFAULT_PORT = 8501


def build_parser() -> argparse.ArgumentParser:
    """The ``musicenv`` command line, whose one subcommand is ``explore``."""
    parser = argparse.ArgumentParser(prog="musicenv", description="musicenv's command line.")
    commands = parser.add_subparsers(dest="command", required=True)
    explore = commands.add_parser(
        "explore",
        help="a web app to look inside a world and watch agents play",
        description="Start the explore web app (Streamlit), on 127.0.0.1 only unless --address says otherwise.",
    )
    explore.add_argument("--world", default=DEFAULT_WORLD, help="a saved world folder, or 'default' (the embedded one)")
    explore.add_argument("--checkpoint-dir", default="checkpoints", help="folder of saved agents (train.py's runs)")
    explore.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"port to serve on (default {DEFAULT_PORT})")
    explore.add_argument(
        "--address", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)"
    )
    return parser


def streamlit_command(port: int, address: str) -> list[str]:
    """The command that serves the app (``python -m streamlit run app.py`` with the server options)."""
    return [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        str(APP),
        "--server.address",
        address,
        "--server.port",
        str(port),
        "--server.headless",
        "true",
        "--browser.gatherUsageStats",
        "false",
        "--client.toolbarMode",
        "minimal",
    ]


def main(argv: list[str] | None = None) -> None:
    """Parse ``argv`` and run the server until it stops (Ctrl-C); its exit status is ours.

    The server is a child process that ends with this one: a SIGTERM sent here (a service
    manager's stop, ``Popen.terminate()``) is passed on to it and waited for, and so is Ctrl-C.
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    if importlib.util.find_spec("streamlit") is None:
        parser.error('the explore app needs the app extra: pip install "musicenv[app]"')
    if not 0 < args.port < 65536:
        parser.error(f"--port must lie in 1..65535, got {args.port}")
    environment = {**os.environ, WORLD_ENV: args.world, CHECKPOINT_DIR_ENV: args.checkpoint_dir}
    print(f"musicenv explore: serving on http://{args.address}:{args.port} (Ctrl-C stops it)", flush=True)
    server = subprocess.Popen(streamlit_command(args.port, args.address), env=environment)
    signal.signal(signal.SIGTERM, lambda signum, frame: server.terminate())
    try:
        status = server.wait()
    except KeyboardInterrupt:  # the server got the same Ctrl-C; make sure it is gone
        server.terminate()
        server.wait()
        status = 0
    raise SystemExit(status if status >= 0 else 128 - status)  # killed by signal N: 128 + N, as a shell says


if __name__ == "__main__":
    main()
