"""Entry point for ``python -m kubearts_predictor`` (and the ``kubearts-predictor`` script)."""

from kubearts_predictor.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
