"""Print uv's pin from uv.lock as a hash-checked pip requirement.

The environment is installed by uv, which is itself locked in uv.lock (dev group). A new
machine has no uv yet, so `make venv` first installs that very version with pip:

    python hack/uv_requirement.py > req.txt && pip install --no-deps --require-hashes -r req.txt

Reading the pin from the lock keeps one source of truth: bumping uv is `make lock` like any
other package, and pip refuses a wheel whose hash is not the one recorded there.
"""

from __future__ import annotations

import sys
import tomllib
from pathlib import Path

LOCK = Path(__file__).resolve().parents[1] / "uv.lock"


def uv_requirement(lock: dict) -> str:
    """`uv==X --hash=sha256:...` for every wheel of the locked uv (all platforms)."""
    for package in lock["package"]:
        if package["name"] == "uv":
            hashes = [wheel["hash"] for wheel in package.get("wheels", [])]
            if not hashes:
                raise SystemExit("uv.lock: package uv has no wheels with hashes")
            options = " ".join(f"--hash={h}" for h in hashes)
            return f"uv=={package['version']} {options}"
    raise SystemExit("uv.lock: no package uv; add it to the dev group and run `make lock`")


def main() -> None:
    lock = tomllib.loads(LOCK.read_text())
    sys.stdout.write(uv_requirement(lock) + "\n")


if __name__ == "__main__":
    main()
