"""What a pod's runtime needs from the node it runs on.

``runtime.PodRuntime`` depends on this Protocol, not on the agent, so the runtime can be
read and tested without the agent; ``agent.Agent`` satisfies it.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any, Protocol

from kubernetes import client

from .cgroups import Hierarchy
from .layout import Layout
from .network import AddressPool


class NodeHost(Protocol):
    """The node agent as seen by one pod: cluster layout, API client and shared pools."""

    layout: Layout
    core: client.CoreV1Api
    venv: Path
    addresses: AddressPool
    cgroups: Hierarchy | None  # where container cgroups go; None where none are writable

    def image_config(self, image: str) -> dict[str, Any] | None:
        """The local mapping of a container image (``images.yaml``), None when unmapped."""
        ...

    def allocate_devices(self, node: str, uid: str, wanted: dict[str, int]) -> dict[str, list[int]]:
        """Hand out device IDs of ``node`` to pod ``uid``."""
        ...

    def release_devices(self, node: str, uid: str) -> None:
        """Return the devices pod ``uid`` held to the node's free pool."""
        ...

    def record_mountpoints(self, targets: Iterable[str]) -> None:
        """Remember mount points created on the host so ``down`` can remove them."""
        ...

    def forget(self, uid: str) -> None:
        """Drop a pod whose runtime has finished for good."""
        ...
