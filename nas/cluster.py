"""Connecting to an existing Ray cluster: fail fast on a dead address, and use the cluster's token.

Nothing here imports Ray: `use_cluster_token` must run before Ray is first imported, because Ray
reads its authentication mode when it loads.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

from nas.errors import ConfigError

TOKEN_FILE = Path.home() / ".ray" / "auth_token"


def check_address(address: str) -> None:
    """Fail fast on a cluster address nobody answers (Ray itself retries for minutes)."""
    if address == "auto" or address.startswith("ray://"):
        return
    host, _, port = address.rpartition(":")
    try:
        with socket.create_connection((host or "127.0.0.1", int(port)), timeout=5):
            pass
    except (OSError, ValueError) as exc:
        raise ConfigError(
            f"--address {address}: no Ray cluster answers there ({exc}); start one with "
            f"`ray start --head` and pass the address it prints, or leave --address out for a local cluster"
        ) from None


def use_cluster_token(address: str | None) -> None:
    """Clusters started by `ray start --head` require token authentication (Ray >= 2.5x); a driver
    that connects must enable it too and present the same token (``~/.ray/auth_token`` or
    ``RAY_AUTH_TOKEN``). A local in-process cluster gets token authentication too, Ray's default for
    it, but asked for explicitly, so Ray does not warn about choosing it. Leaves an explicit
    ``RAY_AUTH_MODE`` alone."""
    if os.environ.get("RAY_AUTH_MODE") is not None:
        return
    if not address or os.environ.get("RAY_AUTH_TOKEN") or TOKEN_FILE.is_file():
        os.environ["RAY_AUTH_MODE"] = "token"
