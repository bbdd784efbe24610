"""Entry point for ``python -m kubearts_dataset``."""

from kubearts_dataset.cli import main

# The guard matters: worker processes of the image checks import the main module.
if __name__ == "__main__":
    raise SystemExit(main())
