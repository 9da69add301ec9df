"""Ray Serve HTTP API: health, snapshots merged on demand, history, Prometheus, dashboard.

Read-only. Every route but /health requires the bearer token when one is configured. Invalid
query parameters get a 400 with the reason. OpenAPI docs are at /docs.
"""

# No ``from __future__ import annotations``: FastAPI reads these route annotations at runtime,
# inside a Serve replica that unpickled the class.
import asyncio
import contextlib
import hmac
import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import ray
from fastapi import FastAPI, Header, HTTPException, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response
from ray import serve

from actors.names import (
    COORDINATOR,
    INTENT_EXECUTOR,
    app_name,
    ingest_name,
    namespace,
    window_name,
)
from actors.observability import BreakdownBy, breakdown_rows, prometheus_text
from models.metrics import EnumMetricsWindow, ModelMetricsState
from models.settings import Settings
from models.version import VERSION
from reducer.nodes.stats import PipelineStats, as_json
from reducer.nodes.supervisor import UNHEALTHY, evaluate_health
from reducer.state import AggregationState
from reducer.windows import window_bounds, window_id

log = logging.getLogger(__name__)
STATIC = Path(__file__).parent / "static"
ACTOR_TIMEOUT_S = 5.0

app = FastAPI(
    title="codegen-metrics-reducer",
    version=VERSION,
    description="Streaming metrics of LLM code-generation fleets (read-only).",
)


@app.exception_handler(RequestValidationError)
async def _bad_request(_request: Request, exc: RequestValidationError) -> JSONResponse:
    problems = [
        f"{'.'.join(str(p) for p in e['loc'][1:]) or e['loc'][0]}: {e['msg']}" for e in exc.errors()
    ]
    return JSONResponse(status_code=400, content={"error": "invalid request", "detail": problems})


async def _call(in_namespace: str, actor_name: str, method: str, *args: Any) -> Any | None:
    """Ask a named actor; None when it is missing, dead or too slow."""
    try:
        actor = ray.get_actor(actor_name, namespace=in_namespace)
        return await asyncio.wait_for(getattr(actor, method).remote(*args), timeout=ACTOR_TIMEOUT_S)
    except Exception:
        return None


@serve.deployment(num_replicas=1, ray_actor_options={"num_cpus": 0.1})
@serve.ingress(app)
class ReducerAPI:
    def __init__(self, settings: Settings, node_id: str) -> None:
        self.settings = settings
        self.node_id = node_id
        self.namespace = namespace(settings.instance)
        self.token = settings.serve.token.get_secret_value() if settings.serve.token else None

    async def _call(self, actor_name: str, method: str, *args: Any) -> Any | None:
        return await _call(self.namespace, actor_name, method, *args)

    def _authorize(self, authorization: str | None) -> None:
        if self.token is None:
            return
        scheme, _, given = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(
            given.encode(), self.token.encode()
        ):
            raise HTTPException(
                401, "missing or wrong bearer token", headers={"WWW-Authenticate": "Bearer"}
            )

    async def _stats(self) -> PipelineStats:
        p = self.settings.pipeline
        ingest, windows, coordinator, executor = await asyncio.gather(
            asyncio.gather(*(self._call(ingest_name(i), "stats") for i in range(p.ingest_actors))),
            asyncio.gather(*(self._call(window_name(j), "stats") for j in range(p.window_actors))),
            self._call(COORDINATOR, "stats"),
            self._call(INTENT_EXECUTOR, "stats"),
        )
        return PipelineStats(list(ingest), list(windows), coordinator, executor)

    async def _snapshot(self, window: EnumMetricsWindow, at: datetime | None) -> dict[str, Any]:
        try:
            start, end = window_bounds(at or datetime.now(UTC), window)
        except (OverflowError, ValueError) as exc:  # a valid datetime whose window cannot be
            raise RequestValidationError(  # represented (year 1 or 9999 edges): the caller's
                [{"loc": ("query", "at"), "msg": f"no {window.value} window holds it ({exc})"}]
            ) from exc
        key = (window, start)
        parts = await asyncio.gather(
            *(
                self._call(window_name(j), "snapshot", key)
                for j in range(self.settings.pipeline.window_actors)
            )
        )
        coordinator = await self._call(COORDINATOR, "stats")
        watermark = coordinator.watermark if coordinator is not None else None
        is_final = watermark is not None and datetime.fromisoformat(watermark) >= end
        state = AggregationState(self.settings.reducer)
        for part in parts:
            if part is not None:
                state.merge_in(AggregationState.from_bytes(part))
        metrics = state.to_metrics(window, start, end).model_dump(mode="json")
        if (
            state.is_empty and is_final
        ):  # released from the window actors: serve the published final
            published = (
                await self._call(
                    COORDINATOR, "recent", window.value, self.settings.pipeline.history_size
                )
                or []
            )
            wanted = window_id(window, start)
            metrics = next((m for m in published if m.get("window_id") == wanted), metrics)
        return {
            **metrics,
            "window_id": window_id(window, start),
            "watermark": watermark,
            "is_final": is_final,
            "actors_answered": sum(p is not None for p in parts),
        }

    # -- routes ------------------------------------------------------------------------------

    @app.get("/health")
    async def health(self) -> JSONResponse:
        stats = await self._stats()
        status, reasons = evaluate_health(stats, self.settings.serve.stall_seconds)
        p = self.settings.pipeline
        actors = [*stats.ingest, *stats.windows, stats.coordinator, stats.intent_executor]
        body = {
            "status": status,
            "reasons": reasons,
            "node_id": self.node_id,
            "node_type": "REDUCER",
            "version": VERSION,
            "window_type": p.windows[0].value,
            "windows": [w.value for w in p.windows],
            "batch_size": p.batch_size,
            "seconds_since_poll": {
                f"ingest-{i}": s.seconds_since_poll if s is not None else None
                for i, s in enumerate(stats.ingest)
            },
            "actors_alive": sum(s is not None for s in actors),
            "actors_expected": p.ingest_actors + p.window_actors + 2,
            "events_in": stats.ingest_total("events_in"),
            "events_out": stats.intent_executor.published if stats.intent_executor else 0,
            "bad_events": stats.ingest_total("events_rejected"),
            "late_events": stats.ingest_total("events_late"),
            "watermark": stats.coordinator.watermark if stats.coordinator else None,
        }
        return JSONResponse(body, status_code=503 if status == UNHEALTHY else 200)

    @app.get("/snapshot")
    async def snapshot(
        self,
        window: EnumMetricsWindow = EnumMetricsWindow.HOURLY,
        at: datetime | None = None,
        authorization: Annotated[str | None, Header()] = None,
    ) -> dict[str, Any]:
        """The current ModelMetricsState of the window holding ``at`` (default now)."""
        self._authorize(authorization)
        return await self._snapshot(window, at)

    @app.get("/snapshot/breakdown")
    async def breakdown(
        self,
        by: BreakdownBy,
        window: EnumMetricsWindow = EnumMetricsWindow.HOURLY,
        at: datetime | None = None,
        authorization: Annotated[str | None, Header()] = None,
    ) -> dict[str, Any]:
        self._authorize(authorization)
        snap = await self._snapshot(window, at)
        metrics = ModelMetricsState.model_validate(snap)
        return {"window_id": snap["window_id"], "by": by, "rows": breakdown_rows(metrics, by)}

    @app.get("/history")
    async def history(
        self,
        window: EnumMetricsWindow = EnumMetricsWindow.HOURLY,
        limit: Annotated[int, Query(ge=1, le=10_000)] = 24,
        authorization: Annotated[str | None, Header()] = None,
    ) -> dict[str, Any]:
        """The most recent closed windows, newest first."""
        self._authorize(authorization)
        recent = await self._call(COORDINATOR, "recent", window.value, limit)
        if recent is None:
            raise HTTPException(503, "coordinator unavailable")
        return {"window": window.value, "windows": recent}

    @app.get("/metrics")
    async def metrics(self, authorization: Annotated[str | None, Header()] = None) -> Response:
        self._authorize(authorization)
        stats = await self._stats()
        hourly = None
        if EnumMetricsWindow.HOURLY in self.settings.pipeline.windows:
            hourly = ModelMetricsState.model_validate(
                await self._snapshot(EnumMetricsWindow.HOURLY, None)
            )
        body = prometheus_text(stats, hourly, pipeline=self.settings.instance)
        return Response(body, media_type="text/plain; version=0.0.4; charset=utf-8")

    @app.get("/api/stats")
    async def pipeline_stats(
        self, authorization: Annotated[str | None, Header()] = None
    ) -> dict[str, Any]:
        """Raw actor stats, for the dashboard's throughput chart."""
        self._authorize(authorization)
        return as_json(await self._stats())

    @app.get("/", response_class=HTMLResponse)
    async def dashboard(self) -> HTMLResponse:
        # The page itself holds no data; its API calls carry the token (asked once, kept in
        # the browser session), so it can load without one.
        page = (STATIC / "dashboard.html").read_text(encoding="utf-8")
        prefix = self.settings.serve.route_prefix.rstrip("/") + "/"
        return HTMLResponse(page.replace('<base href="/">', f'<base href="{prefix}">', 1))

    @app.get("/static/chart.umd.min.js")
    async def chart_js(self) -> FileResponse:
        return FileResponse(STATIC / "chart.umd.min.js", media_type="application/javascript")


class RouteTaken(RuntimeError):
    """Another Serve application already serves the route prefix asked for."""


@dataclass(frozen=True)
class ServedAt:
    """Where the API answers: Serve's proxy address and this instance's route prefix."""

    host: str
    port: int
    route_prefix: str

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}{self.route_prefix.rstrip('/')}"


def start_api(settings: Settings, node_id: str) -> ServedAt:
    """Deploy this instance's API as its own Serve application; returns where it answers.

    Serve has one HTTP proxy per Ray cluster: when it is already running (another pipeline, or
    another team's application), its host and port stay as they are and the URL says so. Two
    applications cannot share a route prefix: another instance needs its own
    ``serve.route_prefix``; taking over someone else's route is refused."""
    s = settings.serve
    serve.start(http_options={"host": s.host, "port": s.port})
    name = app_name(settings.instance)
    details = _serve_details()
    for other, app in (details.get("applications") or {}).items():
        if other != name and app.get("route_prefix") == s.route_prefix:
            raise RouteTaken(
                f"Serve application {other!r} already serves {s.route_prefix!r} on this Ray "
                "cluster; give this pipeline another --route-prefix "
                "(CODEGEN_METRICS_SERVE__ROUTE_PREFIX)"
            )
    serve.run(ReducerAPI.bind(settings, node_id), name=name, route_prefix=s.route_prefix)
    http = details.get("http_options") or {}
    host, port = http.get("host", s.host), int(http.get("port", s.port))
    if (host, port) != (s.host, s.port):
        log.warning(
            "Serve already listens on %s:%d on this Ray cluster (the first start decides); "
            "serving there instead of %s:%d",
            host,
            port,
            s.host,
            s.port,
        )
    return ServedAt(host, port, s.route_prefix)


def _serve_details() -> dict[str, Any]:
    """Serve's applications (with their route prefixes) and its HTTP options."""
    try:
        return serve.context._get_global_client().get_serve_details()
    except Exception:  # an older or newer Serve without it: no conflict check
        log.warning("could not read Serve's applications", exc_info=True)
        return {}


def stop_api(settings: Settings, timeout_s: float = 30.0) -> None:
    """Delete this instance's application only; Serve and other applications stay.

    Waits at most ``timeout_s`` for Serve to confirm, so a stuck controller cannot hang a
    shutdown; after that it logs and returns."""
    name = app_name(settings.instance)
    with contextlib.suppress(Exception):  # Serve not running: nothing to delete
        serve.delete(name, _blocking=False)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if name not in serve.status().applications:
                return
        except Exception:  # Serve itself is gone
            return
        time.sleep(0.2)
    log.warning("Serve did not confirm deleting %s within %.0f s", name, timeout_s)
