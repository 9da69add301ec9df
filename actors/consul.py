"""Consul service registration of the Serve endpoint, in a background thread.

Discovery is a convenience, never a dependency: ``start()`` returns at once, and a daemon
thread registers with capped exponential backoff, then asks the agent every ``resync_seconds``
whether it still knows the service (an agent restarted without its data dir forgets it) and
registers again if not. ``stop()`` deregisters within a bounded time. The ACL token is passed
to py-consul's client (sent as ``X-Consul-Token``) and never logged.
"""

from __future__ import annotations

import logging
import socket
import threading
from typing import Any

import consul

from models.settings import ConsulSettings, ServeSettings

log = logging.getLogger(__name__)

SERVICE_NAME = "codegen-metrics-reducer"
NODE_TYPE = "reducer"
_WILDCARD_HOSTS = ("", "0.0.0.0", "::")
_MAX_ERROR_CHARS = 300


class ConsulRegistrar:
    """Keeps service ``codegen-metrics-reducer-<instance>-<node_id>`` registered while the
    process runs (``codegen-metrics-reducer-<node_id>`` without an instance)."""

    def __init__(
        self,
        settings: ConsulSettings,
        *,
        node_id: str,
        address: str,
        port: int,
        version: str,
        window_type: str,
        instance: str = "",
        route_prefix: str = "/",
    ) -> None:
        self.settings = settings
        self.service_id = "-".join(filter(None, (SERVICE_NAME, instance, node_id)))
        self.address = address
        self.port = port
        self.health_path = f"{route_prefix.rstrip('/')}/health"
        self.tags = ["onex", "bridge", SERVICE_NAME, f"version:{version}"]
        self.tags += [f"node_type:{NODE_TYPE}", f"window_type:{window_type}"]
        self.meta = {"version": version, "node_id": node_id, "window_type": window_type}
        if instance:
            self.tags.append(f"instance:{instance}")
            self.meta["instance"] = instance
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._registered = False
        self._attempts = 0
        self._last_error: str | None = None
        self._said_off = False

    @classmethod
    def from_settings(
        cls,
        consul_settings: ConsulSettings,
        serve: ServeSettings,
        *,
        node_id: str,
        version: str,
        window_type: str,
        port: int | None = None,
        instance: str = "",
        route_prefix: str = "/",
    ) -> ConsulRegistrar:
        """Advertise ``service_address`` or else the Serve host; ``port`` overrides serve.port
        (pass the bound port when serve.port is 0). Never raises, even on odd DNS."""
        address = consul_settings.service_address or serve.host
        if address in _WILDCARD_HOSTS:  # a bind-all address cannot be probed: use our own IP
            try:
                address = socket.gethostbyname(socket.gethostname())
            except OSError:
                address = "127.0.0.1"
        return cls(
            consul_settings,
            node_id=node_id,
            address=address,
            port=serve.port if port is None else port,
            version=version,
            window_type=window_type,
            instance=instance,
            route_prefix=route_prefix,
        )

    @property
    def enabled(self) -> bool:
        return self.settings.enabled

    def registration(self) -> dict[str, Any]:
        """Keyword arguments of py-consul's ``agent.service.register``."""
        s = self.settings
        check = consul.Check.http(
            f"http://{self.address}:{self.port}{self.health_path}",
            s.check_interval,
            timeout=s.check_timeout,
            deregister=s.deregister_critical_after,
        )
        return {
            "name": SERVICE_NAME,
            "service_id": self.service_id,
            "address": self.address,
            "port": self.port,
            "tags": list(self.tags),
            "meta": dict(self.meta),
            "check": check,
            "replace_existing_checks": True,
        }

    def start(self) -> ConsulRegistrar:
        """Launch the registration thread; never blocks and never raises on Consul trouble."""
        if not self.enabled:
            if not self._said_off:
                log.info("Consul registration off (no CONSUL_HTTP_ADDR/CONSUL_HOST)")
                self._said_off = True
            return self
        if self._thread is None:
            self._stopping.clear()
            self._thread = threading.Thread(
                target=self._run, name=f"consul-{self.service_id}", daemon=True
            )
            self._thread.start()
        return self

    def stop(self) -> None:
        """Stop the thread, then deregister: best effort, at most 2 x request_timeout + 1 s."""
        if self._thread is None:
            return
        self._stopping.set()
        self._thread.join(self.settings.request_timeout_seconds + 1.0)
        self._thread = None
        with self._lock:
            tried = self._attempts > 0
        if not tried:
            return
        try:
            gone = self._client().agent.service.deregister(self.service_id)  # False on 404
            log.info(
                "Consul: %s %s", "deregistered" if gone else "was not registered:", self.service_id
            )
        except Exception as exc:
            log.warning("Consul: could not deregister %s: %s", self.service_id, _short(exc))
        with self._lock:
            self._registered = False

    def status(self) -> dict[str, Any]:
        """For /health: is discovery working, and if not, why."""
        with self._lock:
            return {
                "enabled": self.enabled,
                "registered": self._registered,
                "service_id": self.service_id,
                "attempts": self._attempts,
                "last_error": self._last_error,
            }

    def _run(self) -> None:
        client = self._client()
        delay = self.settings.retry_initial_seconds
        while not self._stopping.is_set():
            try:
                if not self._registered or not self._agent_has_service(client):
                    self._register(client)
                delay = self.settings.retry_initial_seconds
                wait = self.settings.resync_seconds
            except Exception as exc:  # the agent is down, refuses or forgot us: retry later
                with self._lock:
                    self._registered, self._last_error = False, _short(exc)
                    attempts = self._attempts
                log.warning(
                    "Consul: %s not registered with agent %s (attempt %d): %s; retry in %.1fs",
                    self.service_id,
                    self.settings.address,
                    attempts,
                    self._last_error,
                    delay,
                )
                wait, delay = delay, min(delay * 2, self.settings.retry_max_seconds)
            self._stopping.wait(wait)

    def _agent_has_service(self, client: consul.Consul) -> bool:
        if self.service_id in client.agent.services():
            return True
        log.warning("Consul agent lost %s (restarted?); registering again", self.service_id)
        with self._lock:
            self._registered = False
        return False

    def _register(self, client: consul.Consul) -> None:
        with self._lock:
            self._attempts += 1
        if not client.agent.service.register(**self.registration()):
            raise RuntimeError("agent did not accept the registration")
        with self._lock:
            self._registered, self._last_error = True, None
            attempts = self._attempts
        where = f"{self.address}:{self.port} with agent {self.settings.address}"
        log.info("Consul: registered %s at %s (attempt %d)", self.service_id, where, attempts)

    def _client(self) -> consul.Consul:
        # Everything explicit: py-consul would otherwise read CONSUL_HTTP_* from the environment
        # (its CONSUL_HTTP_TOKEN even beats token=), and settings were already read at the edge.
        s = self.settings
        client = consul.Consul(
            host=s.host,
            port=s.port,
            scheme=s.scheme,
            verify=s.ca_file or True,
            connections_timeout=s.request_timeout_seconds,
        )
        client.token = s.token.get_secret_value() if s.token else None  # sent as X-Consul-Token
        return client


def _short(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:_MAX_ERROR_CHARS]
