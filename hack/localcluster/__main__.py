"""Command line: ``python -m localcluster {up,down,status,env} [--root DIR]``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from . import cluster

DEFAULT_ROOT = Path(__file__).resolve().parents[2] / ".localcluster"


def main(argv: list[str] | None = None) -> int:
    """Parse the command line and run ``up``, ``down``, ``status`` or ``env``."""
    parser = argparse.ArgumentParser(prog="localcluster", description=__doc__)
    parser.add_argument("command", choices=["up", "down", "status", "env"])
    parser.add_argument(
        "--root",
        type=Path,
        default=DEFAULT_ROOT,
        help="directory holding the cluster's state (default: .localcluster)",
    )
    args = parser.parse_args(argv)
    if args.command == "up":
        layout = cluster.up(args.root)
        print(f"export KUBECONFIG={layout.kubeconfig}")
        return 0
    if args.command == "down":
        cluster.down(args.root)
        return 0
    if args.command == "env":
        print(f"export KUBECONFIG={args.root.resolve() / 'kubeconfig'}")
        return 0
    return cluster.status(args.root)


if __name__ == "__main__":
    sys.exit(main())
