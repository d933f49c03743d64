"""The local OpenID Connect provider (docker/oidc/provider.mjs on Node) that `make run` and the tests sign in through.

What always holds: it listens on 127.0.0.1 only, on a port it picks itself and writes to its address file once it
answers; whoever starts it owns it and stops it (`oidc_provider_stop`), and nothing else does; it is never started
when the environment names a provider of its own (OIDC_ISSUER). Its settings file holds the client's secret and the
accounts' passwords, so it is written readable by its owner only.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sharedcare.embedded.processes import process_stop

BASE_DIR = Path(__file__).resolve().parents[2]
PROVIDER_SCRIPT = BASE_DIR / "docker" / "oidc" / "provider.mjs"
PROVIDER_MODULE = BASE_DIR / "node_modules" / "oidc-provider"
CLIENT_ID = "sharedcare-local"
# How long Node may take to load the provider and answer, on a busy machine.
START_SECONDS = 120


class ProviderUnavailable(Exception):
    """Node or the oidc-provider package is missing (`make install` installs the package), or it did not start."""


@dataclass(frozen=True)
class LocalProvider:
    """A running provider: its process, where it answers, and the client the application signs in as."""

    process: subprocess.Popen[bytes]
    issuer: str
    client_id: str
    client_secret: str

    def env(self) -> dict[str, str]:
        """The settings that point sharedcare at this provider."""
        return {
            "OIDC_ISSUER": self.issuer,
            "OIDC_CLIENT_ID": self.client_id,
            "OIDC_CLIENT_SECRET": self.client_secret,
        }


def node_executable() -> str | None:
    """The Node binary and the installed provider package, or None when either is missing."""
    node = shutil.which("node")
    return node if node and PROVIDER_MODULE.is_dir() else None


def _issuer_answers(issuer: str) -> bool:
    try:
        with urllib.request.urlopen(f"{issuer}/.well-known/openid-configuration", timeout=5) as response:  # noqa: S310
            return bool(json.load(response).get("issuer") == issuer)
    except (OSError, ValueError, urllib.error.URLError):
        return False


def oidc_provider_start(
    workdir: Path,
    *,
    client_secret: str,
    redirect_uris: list[str],
    accounts: list[dict[str, Any]],
    client_id: str = CLIENT_ID,
) -> LocalProvider:
    """Start the provider with these accounts for one client, in `workdir` (its settings, address file and log), and
    return once it answers. Raises ProviderUnavailable when Node or the package is missing or it does not answer."""
    node = node_executable()
    if node is None:
        raise ProviderUnavailable(
            "the local OIDC provider needs Node and the oidc-provider package (`make install`)"
        )
    workdir.mkdir(parents=True, exist_ok=True)
    settings_path = workdir / "oidc-provider.json"
    address_path = workdir / "oidc-provider.address"
    address_path.unlink(missing_ok=True)
    settings_text = json.dumps(
        {
            "client": {
                "client_id": client_id,
                "client_secret": client_secret,
                "redirect_uris": redirect_uris,
            },
            "accounts": accounts,
        }
    )
    descriptor = os.open(settings_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as stream:
        stream.write(settings_text)
    env = {
        "PATH": os.environ.get("PATH", ""),
        "OIDC_PROVIDER_CONFIG": str(settings_path),
        "OIDC_PROVIDER_ADDRESS_FILE": str(address_path),
        "NODE_ENV": "development",
    }
    with open(workdir / "oidc-provider.log", "ab") as log:
        process = subprocess.Popen(  # noqa: S603 - a fixed argument list, no shell
            [node, str(PROVIDER_SCRIPT)], cwd=BASE_DIR, env=env, stdout=log, stderr=subprocess.STDOUT
        )
    deadline = time.monotonic() + START_SECONDS
    while process.poll() is None and time.monotonic() < deadline:
        if address_path.exists():
            issuer = address_path.read_text().strip()
            if _issuer_answers(issuer):
                return LocalProvider(process, issuer, client_id, client_secret)
        time.sleep(0.2)
    oidc_provider_stop(process)
    raise ProviderUnavailable(f"the local OIDC provider did not answer; see {workdir / 'oidc-provider.log'}")


def oidc_provider_stop(process: subprocess.Popen[bytes]) -> None:
    """Stop a provider this process started: SIGTERM, then SIGKILL if it outlasts the stop deadline."""
    if process.poll() is None:
        process_stop(process.pid, signal.SIGTERM, signal.SIGKILL)
    process.wait()
