"""Entry point for ``python -m kubearts_trainer``."""

from kubearts_trainer.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
