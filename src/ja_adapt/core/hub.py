"""When a name may go to the model / dataset hub: only a hub id (`owner/name`) that is not a local
path, while the hub is switched on and answers. Anything else fails at once with a one-line error
instead of after about 30 s of network retries (a broken symlink, a typo with a slash, an offline
machine).
"""

from __future__ import annotations

import os
import re
import socket
from urllib.parse import urlsplit

from ja_adapt.core.errors import UserError

HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")  # owner/name: one slash, no leading / . ~
_OFFLINE_VARS = ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE")
PROBE_TIMEOUT_S = 3.0  # how long the hub's host may take to accept a connection


def offline() -> bool:
    """True when the user switched the hub off (HF_HUB_OFFLINE and its siblings)."""
    return any(os.environ.get(v, "").lower() in ("1", "true", "yes", "on") for v in _OFFLINE_VARS)


def is_hub_id(name: str) -> bool:
    """True for `owner/name` that is not a local path: not absolute, not ./ ../ ~, one slash, and
    no file, directory or symlink (even a broken one) of that name."""
    return bool(HUB_ID.match(name)) and not os.path.lexists(name)


def _endpoint() -> tuple[str, int]:
    from huggingface_hub import constants  # the hub client's endpoint (HF_ENDPOINT); hub use only

    url = urlsplit(constants.ENDPOINT)
    return url.hostname or "", url.port or (443 if url.scheme == "https" else 80)


def reachable() -> bool:
    """True when the hub's host accepts a TCP connection within PROBE_TIMEOUT_S."""
    try:
        with socket.create_connection(_endpoint(), timeout=PROBE_TIMEOUT_S):
            return True
    except OSError:
        return False


def require_reachable(name: str, what: str) -> None:
    """Raise a UserError unless the hub, where `name` (a `what`: model, dataset) would be fetched
    from, is switched on and answers."""
    if offline():
        raise UserError(
            f"{what} '{name}': no such local path, and the hub is switched off (HF_HUB_OFFLINE); check the path"
        )
    if not reachable():
        raise UserError(
            f"{what} '{name}': no such local path, and the hub cannot be reached; check "
            "the path, or set HF_HUB_OFFLINE=1 to skip the hub"
        )
