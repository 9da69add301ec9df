"""An in-process fake Consul agent: the HTTP endpoints the project uses, and a request log.

No Consul binary can be installed here, so the tests talk to this. It mirrors the agent where
the project depends on it: JSON keys are matched case-insensitively (py-consul sends lowercase
ones), a service's single check gets the ID ``service:<service_id>`` and starts critical,
deregistering an unknown service is a 404, and an ACL token (``X-Consul-Token`` header,
``Authorization: Bearer`` or ``?token=``) can be required. It can refuse the first N requests
(HTTP 500 or a dropped connection) and "restart", forgetting every service, as an agent without
a data dir does.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Literal
from urllib.parse import parse_qs, urlsplit

NODE = "fake-node"
LEADER = "127.0.0.1:8300"
_NO_ACL_PATHS = ("/v1/status/leader", "/v1/status/peers")  # as on a real agent
#: lowercase key -> the agent's spelling, for check definitions echoed by /v1/agent/checks
_CHECK_KEYS = {
    k.lower(): k
    for k in ("HTTP", "Interval", "Timeout", "DeregisterCriticalServiceAfter", "TTL", "Header")
}


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: Any
    refused: bool

    def token(self) -> str | None:
        auth = self.headers.get("authorization", "")
        bearer = auth[7:] if auth.lower().startswith("bearer ") else None
        return self.headers.get("x-consul-token") or bearer or self.query.get("token")


@dataclass
class _State:
    services: dict[str, dict[str, Any]] = field(default_factory=dict)
    checks: dict[str, dict[str, Any]] = field(default_factory=dict)
    requests: list[RecordedRequest] = field(default_factory=list)
    refuse_left: int = 0
    refuse_mode: Literal["500", "close"] = "500"
    required_token: str | None = None


def _lower_keys(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k).lower(): _lower_keys(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_lower_keys(v) for v in value]
    return value


class FakeConsulAgent:
    """``with FakeConsulAgent() as agent:`` serves on ``agent.address`` (127.0.0.1, free port)."""

    def __init__(self, required_token: str | None = None) -> None:
        self.state = _State(required_token=required_token)
        self.lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _make_handler(self))
        self.server.daemon_threads = True
        self.host, self.port = "127.0.0.1", int(self.server.server_address[1])
        self.address = f"{self.host}:{self.port}"
        self._thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    def __enter__(self) -> FakeConsulAgent:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.server.shutdown()
        self.server.server_close()

    # -- test controls -------------------------------------------------------------------------
    def refuse(self, count: int, mode: Literal["500", "close"] = "500") -> None:
        """Fail the next ``count`` requests with HTTP 500, or by closing the connection."""
        with self.lock:
            self.state.refuse_left, self.state.refuse_mode = count, mode

    def restart(self) -> None:
        """Forget every service and check, as an agent restarted without its data dir."""
        with self.lock:
            self.state.services.clear()
            self.state.checks.clear()

    @property
    def requests(self) -> list[RecordedRequest]:
        with self.lock:
            return list(self.state.requests)

    def requests_to(self, method: str, path_prefix: str) -> list[RecordedRequest]:
        return [
            r
            for r in self.requests
            if r.method == method and r.path.startswith(path_prefix) and not r.refused
        ]

    @property
    def services(self) -> dict[str, dict[str, Any]]:
        with self.lock:
            return json.loads(json.dumps(self.state.services))

    def wait_for(self, predicate: Any, timeout: float = 5.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return True
            time.sleep(0.01)
        return bool(predicate())

    # -- agent behaviour -----------------------------------------------------------------------
    def handle(self, method: str, path: str, body: Any) -> tuple[int, Any]:
        s = self.state
        parts = path.strip("/").split("/")
        if method == "PUT" and path == "/v1/agent/service/register":
            return self._register(_lower_keys(body or {}))
        if method == "PUT" and path.startswith("/v1/agent/service/deregister/"):
            service_id = parts[-1]
            if s.services.pop(service_id, None) is None:
                return 404, f'Unknown service ID "{service_id}"'
            for check_id in [c for c, v in s.checks.items() if v["ServiceID"] == service_id]:
                del s.checks[check_id]
            return 200, None
        if method == "GET" and path == "/v1/agent/services":
            return 200, s.services
        if method == "GET" and path == "/v1/agent/checks":
            return 200, s.checks
        if method == "PUT" and len(parts) == 5 and parts[:3] == ["v1", "agent", "check"]:
            status = {"pass": "passing", "warn": "warning", "fail": "critical"}.get(parts[3])
            if status is None or parts[4] not in s.checks:
                return 404, f'Unknown check ID "{parts[4]}"'
            s.checks[parts[4]]["Status"] = status
            return 200, None
        if method == "GET" and path.startswith("/v1/health/service/"):
            return 200, [
                {
                    "Node": {"Node": NODE, "Address": "127.0.0.1"},
                    "Service": svc,
                    "Checks": [c for c in s.checks.values() if c["ServiceID"] == svc["ID"]],
                }
                for svc in s.services.values()
                if svc["Service"] == parts[-1]
            ]
        if method == "GET" and path == "/v1/status/leader":
            return 200, LEADER
        return 404, f"fake agent: no route for {method} {path}"

    def _register(self, body: dict[str, Any]) -> tuple[int, Any]:
        if not body.get("name"):
            return 400, "Missing service name"
        service_id = body.get("id") or body["name"]
        self.state.services[service_id] = {
            "ID": service_id,
            "Service": body["name"],
            "Tags": body.get("tags") or [],
            "Meta": body.get("meta") or {},
            "Address": body.get("address", ""),
            "Port": body.get("port", 0),
        }
        checks = list(body.get("checks") or []) + ([body["check"]] if body.get("check") else [])
        for index, check in enumerate(checks, start=1):
            suffix = f":{index}" if len(checks) > 1 else ""
            check_id = check.get("checkid") or check.get("id") or f"service:{service_id}{suffix}"
            self.state.checks[check_id] = {
                "Node": NODE,
                "CheckID": check_id,
                "Name": check.get("name") or f"Service '{body['name']}' check",
                "Status": check.get("status") or "critical",
                "ServiceID": service_id,
                "ServiceName": body["name"],
                "Type": "http" if "http" in check else "ttl" if "ttl" in check else "script",
                "Definition": {_CHECK_KEYS.get(k, k): v for k, v in check.items()},
            }
        return 200, None


def _make_handler(agent: FakeConsulAgent) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:  # quiet test output
            pass

        def _serve(self) -> None:
            url = urlsplit(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            try:
                body = json.loads(raw) if raw else None
            except ValueError:
                body = raw.decode("utf-8", "replace")
            query = {k: v[-1] for k, v in parse_qs(url.query, keep_blank_values=True).items()}
            headers = {k.lower(): v for k, v in self.headers.items()}
            with agent.lock:
                refused = agent.state.refuse_left > 0
                if refused:
                    agent.state.refuse_left -= 1
                mode = agent.state.refuse_mode
                request = RecordedRequest(self.command, url.path, query, headers, body, refused)
                agent.state.requests.append(request)
                if refused:
                    code, payload = 500, "rpc error: fake agent refusing"
                elif agent.state.required_token not in (None, request.token()) and (
                    url.path not in _NO_ACL_PATHS
                ):
                    code, payload = 403, "Permission denied: token not found"
                else:
                    code, payload = agent.handle(self.command, url.path, body)
            if refused and mode == "close":
                self.close_connection = True
                return  # no response at all: the client sees the connection drop
            # Like the agent: JSON on success (empty for writes), plain text for errors.
            text = code != 200
            if text:
                data = str(payload).encode()
            else:
                data = b"" if payload is None else json.dumps(payload).encode()
            self.send_response(code)
            self.send_header("Content-Type", "text/plain" if text else "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.send_header("X-Consul-Index", str(len(agent.state.requests)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_PUT = do_POST = do_DELETE = _serve

    return Handler
