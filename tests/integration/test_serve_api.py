"""The HTTP API against a running pipeline on the test broker (Ray Serve on a free port)."""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import quote

import pytest
import ray
from prometheus_client.parser import text_string_to_metric_families

from actors import kafka
from actors.broker import free_port
from actors.fleet import produce_events
from actors.names import INTENT_EXECUTOR, namespace
from actors.pipeline import Pipeline
from actors.serve_app import start_api, stop_api
from cli.simulator import simulate_fleet
from models import EnumMetricsWindow, Settings, decode_one
from models.settings import KafkaSettings, PipelineSettings, ServeSettings
from models.version import VERSION
from reducer import MetricsAggregator, window_bounds
from tests.integration.test_pipeline import COMPARED, START

GRAFANA_DASHBOARD = "docs/grafana/codegen-metrics.json"
TOKEN = "s3cret-token"
AHEAD = timedelta(minutes=3)
# The README's screenshot: the browser test takes it; it replaces the committed one only when
# asked (UPDATE_SCREENSHOT=1), so a test run leaves the tree clean.
SCREENSHOT = Path(__file__).resolve().parents[2] / "docs" / "dashboard.png"


def get(base: str, path: str, token: str | None = TOKEN) -> tuple[int, bytes, dict]:
    request = urllib.request.Request(base + path)
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.read(), dict(response.headers)
    except urllib.error.HTTPError as error:
        return error.code, error.read(), dict(error.headers)


def get_json(base: str, path: str, token: str | None = TOKEN) -> tuple[int, dict]:
    status, body, _ = get(base, path, token)
    return status, json.loads(body)


@pytest.fixture(scope="module")
def live(ray_session: None, broker: str) -> Iterator[dict]:
    """A pipeline with two ingest actors and the API, fed closed and live windows."""
    tag = f"s{int(time.time())}"
    kafka_settings = KafkaSettings(bootstrap_servers=broker, topic_prefix=tag, group_id=tag)
    settings = Settings(
        kafka=kafka_settings,
        pipeline=PipelineSettings(
            ingest_actors=2,
            window_actors=2,
            tick_seconds=0.5,
            # Windows holding live events stay open for two hours after their end, so no hour or
            # day boundary during the run can close them; the old backlog still closes, because
            # every partition's progress reaches the live events (and a partition read to its
            # end with old events only goes idle after 2 s).
            allowed_lateness_seconds=7200,
            idle_partition_timeout_seconds=2,
            storage_path=tempfile.mkdtemp(prefix="ckpt"),
        ),
        serve=ServeSettings(port=free_port(), token=TOKEN, node_id="test-node"),
    )
    old = list(simulate_fleet(40, 1, start=START, workflows_per_second=0.05))
    now = datetime.now(UTC)
    # Live events from 90 s ago to 3 minutes ahead (inside the 5-minute future skew), so the
    # window containing "now" holds events for every test of this module, midnight or not.
    recent = list(simulate_fleet(200, 2, start=now - timedelta(seconds=90), workflows_per_second=1))
    recent = [e for e in recent if datetime.fromisoformat(e["timestamp"]) < now + AHEAD]
    # A backlog read by a new consumer group (produced first: an idle pipeline would rightly
    # let the wall clock close these old windows, making them late).
    kafka.ensure_topics(kafka_settings, kafka_settings.input_topics)
    produce_events(kafka_settings, old + recent)
    pipeline = Pipeline(settings).start()
    base = start_api(settings, "test-node").url
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            applied = sum(w.events_applied for w in pipeline.stats().windows)
            finals = pipeline.stats().coordinator.finals_published
            # the four windows of the old events (hour, day, week, month) are all closed
            if applied == len(old) + len(recent) and finals >= 4:
                break
            time.sleep(0.3)
        live_at = datetime.fromisoformat(recent[-1]["timestamp"])
        yield {"base": base, "settings": settings, "old": old, "recent": recent, "at": live_at}
    finally:
        stop_api(settings)
        pipeline.stop()


def expected_window(events: list[dict], window: EnumMetricsWindow, at: datetime) -> dict:
    start, end = window_bounds(at, window)
    inside = [
        decode_one(json.dumps(e))
        for e in events
        if start <= datetime.fromisoformat(e["timestamp"]) < end
    ]
    return MetricsAggregator.aggregate_events(inside, window).model_dump(
        mode="json", include=COMPARED - {"window_start", "window_end"}
    )


def test_health_is_open_without_token_and_reports_what_makes_it_true(live: dict) -> None:
    total = len(live["old"]) + len(live["recent"])
    deadline = time.monotonic() + 60  # a loaded machine may still be consuming the backlog
    status, body = get_json(live["base"], "/health", token=None)
    # The executor publishes the old windows' finals a moment after the coordinator plans them.
    while (body.get("events_in") != total or body.get("events_out", 0) < 4) and (
        time.monotonic() < deadline
    ):
        time.sleep(0.5)
        status, body = get_json(live["base"], "/health", token=None)
    assert status == 200 and body["status"] == "healthy", body
    assert body["node_type"] == "REDUCER" and body["node_id"] == "test-node"
    assert body["actors_alive"] == body["actors_expected"] == 6
    assert body["events_in"] == len(live["old"]) + len(live["recent"])
    assert body["bad_events"] == 0 and body["batch_size"] == 4000  # the default
    assert set(body["seconds_since_poll"]) == {"ingest-0", "ingest-1"}
    assert body["version"] == VERSION and body["window_type"] == "hourly"
    assert body["events_out"] >= 4  # at least the old windows' four finals went out


def test_every_other_route_requires_the_bearer_token(live: dict) -> None:
    for path in ("/snapshot", "/snapshot/breakdown?by=model", "/history", "/metrics", "/api/stats"):
        assert get(live["base"], path, token=None)[0] == 401, path
        assert get(live["base"], path, token="wrong")[0] == 401, path


def test_snapshot_of_the_current_hour_is_merged_on_demand_and_exact(live: dict) -> None:
    at = quote(live["at"].isoformat())
    status, body = get_json(live["base"], f"/snapshot?window=hourly&at={at}")
    assert status == 200
    expected = expected_window(live["recent"], EnumMetricsWindow.HOURLY, live["at"])
    assert {k: body[k] for k in expected} == expected
    assert body["is_final"] is False and body["watermark"] is not None
    assert body["events_processed"] > 0


def test_snapshot_at_a_closed_window_returns_its_final_metrics(live: dict) -> None:
    at = START + timedelta(minutes=45)
    status, body = get_json(live["base"], f"/snapshot?window=daily&at={quote(at.isoformat())}")
    assert status == 200 and body["is_final"] is True
    expected = expected_window(live["old"], EnumMetricsWindow.DAILY, at)
    assert {k: body[k] for k in expected} == expected


@pytest.mark.parametrize(
    "by", ["stage", "model", "node_type", "quality_bucket", "cost_bucket", "workflow"]
)
def test_breakdown_returns_the_grouping_as_rows(live: dict, by: str) -> None:
    at = quote(live["at"].isoformat())
    status, body = get_json(live["base"], f"/snapshot/breakdown?window=hourly&by={by}&at={at}")
    assert status == 200 and body["by"] == by
    assert body["rows"] and all("key" in row for row in body["rows"])


def test_history_lists_closed_windows_newest_first(live: dict) -> None:
    status, body = get_json(live["base"], "/history?window=hourly&limit=50")
    assert status == 200
    starts = [w["window_start"] for w in body["windows"]]
    assert starts and starts == sorted(starts, reverse=True)
    assert all(w["is_final"] for w in body["windows"])
    assert len(get_json(live["base"], "/history?window=hourly&limit=1")[1]["windows"]) == 1


@pytest.mark.parametrize(
    "path",
    [
        "/snapshot?window=yearly",
        "/snapshot?at=yesterday",
        "/snapshot/breakdown?by=colour",
        "/snapshot/breakdown",
        "/history?limit=0",
        "/history?limit=abc",
        # Valid datetimes whose window falls outside what a datetime can hold.
        "/snapshot?at=9999-12-31T23:30:00Z",
        "/snapshot?window=monthly&at=9999-12-15T00:00:00Z",
        "/snapshot/breakdown?by=model&at=0001-01-01T00:30:00%2B01:00",
    ],
)
def test_invalid_query_parameters_get_a_400_with_the_reason(live: dict, path: str) -> None:
    status, body = get_json(live["base"], path)
    assert status == 400, (path, body)
    assert body["error"] == "invalid request" and body["detail"]


def test_metrics_is_valid_prometheus_text_with_counters_gauges_and_the_current_hour(
    live: dict,
) -> None:
    status, body, headers = get(live["base"], "/metrics")
    assert status == 200 and headers["content-type"].startswith("text/plain")
    families = {f.name: f for f in text_string_to_metric_families(body.decode())}
    events = {
        s.labels["event_type"]: s.value
        for s in families["codegen_metrics_events"].samples
        if s.name.endswith("_total")
    }
    assert sum(events.values()) == len(live["old"]) + len(live["recent"])
    for name in (
        "codegen_metrics_batches_in_flight",
        "codegen_metrics_watermark_lag_seconds",
        "codegen_metrics_open_windows",
        "codegen_metrics_current_hour_success_ratio",
        "codegen_metrics_checkpoint_age_seconds",
        "codegen_metrics_tick_age_seconds",
        "codegen_metrics_checkpoint_failures",
        "codegen_metrics_publish_failures",
        "codegen_metrics_current_hour_cost_usd",
        "codegen_metrics_published_updates",
        "codegen_metrics_bad_events",
    ):
        assert name in families, name
    hour = {
        q: families[f"codegen_metrics_current_hour_duration_{q}_seconds"].samples[0].value
        for q in ("p50", "p95", "p99")
    }
    assert 0 <= hour["p50"] <= hour["p95"] <= hour["p99"], hour
    assert 0 <= families["codegen_metrics_current_hour_success_ratio"].samples[0].value <= 1
    assert "_created" not in body.decode()


def test_actors_export_custom_metrics_through_ray_for_the_dashboard(
    live: dict, ray_metrics_port: int
) -> None:
    wanted = {
        "ray_codegen_metrics_ingest_events_total",
        "ray_codegen_metrics_window_events_applied_total",
        "ray_codegen_metrics_window_apply_ms_bucket",
        "ray_codegen_metrics_ingest_batch_latency_ms_bucket",
        "ray_codegen_metrics_window_lag_seconds",
    }
    seen: set[str] = set()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not wanted <= seen:
        status, body, _ = get(f"http://127.0.0.1:{ray_metrics_port}", "/metrics", token=None)
        if status == 200:
            seen = {f.name for f in text_string_to_metric_families(body.decode())} | {
                s.name for f in text_string_to_metric_families(body.decode()) for s in f.samples
            }
        time.sleep(2)
    assert wanted <= seen, wanted - seen


def test_openapi_docs_are_served(live: dict) -> None:
    status, body, _ = get(live["base"], "/openapi.json", token=None)
    assert status == 200 and "/snapshot/breakdown" in json.loads(body)["paths"]
    assert get(live["base"], "/docs", token=None)[0] == 200


@pytest.mark.skipif(
    shutil.which("chromium") is None and not __import__("os").environ.get("CI"),
    reason="Debian chromium not installed (CI installs it; this never skips in CI)",
)
def test_dashboard_renders_charts_with_data_in_a_real_headless_browser(
    live: dict, tmp_path: Path
) -> None:
    from playwright.sync_api import sync_playwright

    errors: list[str] = []
    fetched: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=shutil.which("chromium") or "/usr/bin/chromium",
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
            ],
        )
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.on("request", lambda r: fetched.append(r.url))
        page.add_init_script(f"sessionStorage.setItem('codegenMetricsToken', '{TOKEN}')")
        page.goto(live["base"] + "/")
        page.wait_for_function("window.dashboardState && window.dashboardState.rendered >= 1")
        page.select_option("#window", "daily")  # the live events' day stays open all test long
        page.wait_for_function("window.dashboardState.rendered >= 3", timeout=30_000)
        points = page.evaluate("window.dashboardState.points")
        charted = page.evaluate(
            "Object.values(Chart.instances).map(c => c.data.datasets.reduce("
            "(n, d) => n + d.data.filter(v => v !== null && v !== undefined).length, 0))"
        )
        shot = SCREENSHOT if os.environ.get("UPDATE_SCREENSHOT") else tmp_path / "dashboard.png"
        page.screenshot(path=str(shot), full_page=True)
        status = page.text_content("#status")
        browser.close()
    assert errors == []
    assert shot.stat().st_size > 10_000
    # Offline: everything the page loads comes from the service itself (no CDN).
    assert fetched and all(u.startswith((live["base"], "data:")) for u in fetched), fetched
    assert points >= 2  # closed windows from history plus the current one
    assert len(charted) == 6 and all(n > 0 for n in charted), charted
    assert status == "healthy"


def test_every_metric_the_grafana_dashboard_queries_is_exported(
    live: dict, ray_metrics_port: int
) -> None:
    dashboard = json.loads((Path(__file__).parents[2] / GRAFANA_DASHBOARD).read_text())
    queried = {
        name
        for panel in dashboard["panels"]
        for target in panel["targets"]
        for name in re.findall(r"\b(?:ray_)?codegen_metrics_[a-z0-9_]+", target["expr"])
    }
    assert len(queried) >= 20, queried
    exported: set[str] = set()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not queried <= exported:
        for base in (live["base"], f"http://127.0.0.1:{ray_metrics_port}"):
            status, body, _ = get(base, "/metrics")
            if status == 200:
                families = list(text_string_to_metric_families(body.decode()))
                exported |= {s.name for f in families for s in f.samples}
        time.sleep(2)
    assert queried <= exported, sorted(queried - exported)


def test_health_turns_degraded_without_the_executor_then_unhealthy_503_when_ingest_stops(
    live: dict,
) -> None:
    where = namespace(live["settings"].instance)
    ray.kill(ray.get_actor(INTENT_EXECUTOR, namespace=where))
    status, body = get_json(live["base"], "/health", token=None)
    assert status == 200 and body["status"] == "degraded"
    assert body["reasons"] == ["intent executor is down"]
    ray.get(ray.get_actor("ingest-1", namespace=where).stop.remote())
    status, body = get_json(live["base"], "/health", token=None)
    assert status == 503 and body["status"] == "unhealthy"
    assert body["reasons"] == ["ingest-1 has stopped consuming", "intent executor is down"]
