"""Entry point for ``python -m kubearts_converter``."""

from kubearts_converter.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
