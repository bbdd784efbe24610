"""The KubeArts dataset worker: download, unpack safely, verify and publish split versions.

Run as ``python -m kubearts_dataset ingest ...`` or ``python -m kubearts_dataset publish ...``;
the command-line contract (flags, exit codes, result JSON, progress lines, on-disk layout) is
described in this project's README and implemented in :mod:`kubearts_dataset.cli`.
"""

__version__ = "0.1.0"
