"""A real Synapse homeserver for the Matrix adapter's tests.

:func:`synapse_server` (session-scoped) writes a minimal ``homeserver.yaml``
(SQLite, one loopback listener on a free port, no federation, registration
by shared secret only, rate limits out of the way), generates the signing
key, starts ``python -m synapse.app.homeserver`` as a subprocess, waits for
``/_matrix/client/versions`` and stops it when the session ends.

If Synapse cannot start, the tests that need it fail with the reason in CI
(``CI=true``) and are skipped with the reason elsewhere.

:class:`Synapse` can also :meth:`~Synapse.stop` and :meth:`~Synapse.start`
the same server again (same port, same database), for the "homeserver goes
away mid-run" tests.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest

SERVER_NAME = "qunyun.test"
START_TIMEOUT = 90.0

_RELAXED = "{per_second: 10000, burst_count: 100000}"

CONFIG = """\
server_name: "{server_name}"
pid_file: {dir}/homeserver.pid
public_baseurl: "http://127.0.0.1:{port}/"
listeners:
  - port: {port}
    bind_addresses: ["127.0.0.1"]
    type: http
    tls: false
    x_forwarded: false
    resources:
      - names: [client]
        compress: false
database:
  name: sqlite3
  args:
    database: {dir}/homeserver.db
log_config: "{dir}/log.config"
media_store_path: {dir}/media
signing_key_path: "{dir}/signing.key"
registration_shared_secret: "{secret}"
macaroon_secret_key: "{macaroon}"
form_secret: "{form}"
enable_registration: false
report_stats: false
trusted_key_servers: []
suppress_key_server_warning: true
federation_domain_whitelist: []
allow_public_rooms_over_federation: false
presence:
  enabled: false
url_preview_enabled: false
enable_metrics: false
rc_message: {relaxed}
rc_registration: {relaxed}
rc_joins:
  local: {relaxed}
  remote: {relaxed}
rc_joins_per_room: {relaxed}
rc_invites:
  per_room: {relaxed}
  per_user: {relaxed}
  per_issuer: {relaxed}
rc_admin_redaction: {relaxed}
rc_login:
  address: {relaxed}
  account: {relaxed}
  failed_attempts: {relaxed}
rc_3pid_validation: {relaxed}
rc_presence:
  per_user: {relaxed}
rc_delayed_event_mgmt: {relaxed}
rc_room_creation: {relaxed}
rc_reports: {relaxed}
"""

LOG_CONFIG = """\
version: 1
formatters:
  precise:
    format: '%(asctime)s - %(name)s - %(lineno)d - %(levelname)s - %(message)s'
handlers:
  file:
    class: logging.FileHandler
    formatter: precise
    filename: {dir}/homeserver.log
    encoding: utf8
loggers:
  synapse.storage.SQL:
    level: WARNING
root:
  level: WARNING
  handlers: [file]
disable_existing_loggers: false
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Account:
    """A registered user: ``user_id``, its ``access_token`` and ``password``."""

    user_id: str
    access_token: str
    password: str
    device_id: str

    @property
    def localpart(self) -> str:
        return self.user_id[1:].split(":", 1)[0]


class SynapseError(RuntimeError):
    pass


class Synapse:
    """One Synapse subprocess in ``directory``."""

    def __init__(self, directory: Path, *, python: str = sys.executable) -> None:
        self.dir = directory
        #: the interpreter that runs Synapse (the benchmark may pass one with psycopg2 for PostgreSQL)
        self.python = python
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.shared_secret = secrets.token_hex(16)
        self.proc: subprocess.Popen[bytes] | None = None
        self.server_name = SERVER_NAME

    # --------------------------------------------------------------- process

    def configure(self) -> None:
        d = self.dir
        (d / "media").mkdir(parents=True, exist_ok=True)
        (d / "homeserver.yaml").write_text(
            CONFIG.format(
                server_name=SERVER_NAME, dir=d, port=self.port, secret=self.shared_secret,
                macaroon=secrets.token_hex(16), form=secrets.token_hex(16), relaxed=_RELAXED,
            ),
            encoding="utf-8",
        )
        (d / "log.config").write_text(LOG_CONFIG.format(dir=d), encoding="utf-8")
        done = subprocess.run(
            [self.python, "-m", "synapse.app.homeserver", "-c", str(d / "homeserver.yaml"), "--generate-keys"],
            capture_output=True, timeout=120, cwd=d,
        )
        if done.returncode != 0:
            raise SynapseError(f"generating the signing key failed: {done.stderr.decode(errors='replace')[-2000:]}")

    def start(self) -> None:
        """Start the server (again) and wait until the client API answers."""
        if self.proc is not None and self.proc.poll() is None:
            return
        out = open(self.dir / "stdout.log", "ab")  # noqa: SIM115 - kept open for the child's lifetime
        self.proc = subprocess.Popen(
            [self.python, "-m", "synapse.app.homeserver", "-c", str(self.dir / "homeserver.yaml")],
            stdout=out, stderr=subprocess.STDOUT, cwd=self.dir,
        )
        out.close()
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise SynapseError(f"synapse exited with code {self.proc.returncode}: {self.log_tail()}")
            try:
                with urllib.request.urlopen(f"{self.url}/_matrix/client/versions", timeout=2) as resp:
                    if resp.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.1)
        self.stop()
        raise SynapseError(f"synapse did not answer within {START_TIMEOUT:g} s: {self.log_tail()}")

    def stop(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL after 20 s)."""
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log_tail(self, chars: int = 3000) -> str:
        parts = []
        for name in ("stdout.log", "homeserver.log"):
            path = self.dir / name
            if path.exists():
                parts.append(path.read_text(encoding="utf-8", errors="replace")[-chars:])
        return "\n".join(parts) or "(no log)"

    # -------------------------------------------------------------- accounts

    def _post(self, path: str, body: dict[str, Any] | None = None, token: str | None = None) -> Any:
        data = orjson.dumps(body) if body is not None else None
        req = urllib.request.Request(self.url + path, data=data, method="POST" if data is not None else "GET")
        req.add_header("Content-Type", "application/json")
        if token:
            req.add_header("Authorization", f"Bearer {token}")
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                return orjson.loads(resp.read())
        except urllib.error.HTTPError as exc:
            raise SynapseError(f"{path}: HTTP {exc.code}: {exc.read()[:500]!r}") from None

    def register(self, localpart: str, *, admin: bool = False, displayname: str | None = None) -> Account:
        """Register a user through the shared-secret admin API (``/_synapse/admin/v1/register``)."""
        nonce = self._post("/_synapse/admin/v1/register")["nonce"]
        password = secrets.token_hex(12)
        message = "\x00".join((nonce, localpart, password, "admin" if admin else "notadmin"))
        mac = hmac.new(self.shared_secret.encode(), message.encode(), hashlib.sha1)
        body: dict[str, Any] = {
            "nonce": nonce, "username": localpart, "password": password, "admin": admin, "mac": mac.hexdigest(),
        }
        if displayname:
            body["displayname"] = displayname
        out = self._post("/_synapse/admin/v1/register", body)
        return Account(out["user_id"], out["access_token"], password, out["device_id"])


def _start_or_explain(directory: Path) -> Synapse:
    try:
        import synapse  # noqa: F401
    except ImportError as exc:
        _unavailable(f"matrix-synapse is not installed ({exc})")
    server = Synapse(directory)
    try:
        server.configure()
        server.start()
    except (SynapseError, OSError, subprocess.SubprocessError) as exc:
        server.stop()
        _unavailable(f"Synapse cannot start on this machine: {exc}")
    return server


def _unavailable(why: str) -> None:
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(why, pytrace=False)
    pytest.skip(why)


@pytest.fixture(scope="session")
def synapse_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Synapse]:
    """A running Synapse for the whole session (stopped at the end)."""
    server = _start_or_explain(tmp_path_factory.mktemp("synapse"))
    try:
        yield server
    finally:
        server.stop()


async def wait_for(predicate: Any, what: str, timeout: float = 20.0, step: float = 0.05) -> None:
    """Poll ``predicate`` (sync or async) until it is true; fails naming ``what``."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        await asyncio.sleep(step)


__all__ = ["SERVER_NAME", "Account", "Synapse", "SynapseError", "free_port", "synapse_server", "wait_for"]
