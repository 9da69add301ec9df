"""Made checkpoint-v1.ckpt: run from a checkout of commit 0aaffcc (checkpoint version 1),
``python tests/unit/actors/data/make_checkpoint_v1.py OUT``. Two window blobs built exactly as
that commit's WindowActor.checkpoint() did (zlib JSON, base64 dedup ids inside), in a version-1
file. Kept for the record (it does not run against the current code; other fields are random)."""

import json
import sys
import uuid
import zlib
from datetime import UTC, datetime, timedelta

from models.metrics import EnumMetricsWindow
from models.settings import ReducerSettings
from reducer.dedup import DedupFilter
from reducer.nodes.checkpoint import VERSION, Checkpoint
from reducer.panes import PaneStore
from reducer.watermark import WatermarkTracker
from tests.datasets import stage

assert VERSION == 1
HOUR0 = datetime(2026, 10, 1, 0, tzinfo=UTC)
TOPIC = "dev.codegen.stage_completed.v1"
blobs = []
for actor in range(2):
    store = PaneStore(ReducerSettings(), list(EnumMetricsWindow))
    tracker = WatermarkTracker(60, 30)
    dedup = DedupFilter(3600)
    events = [
        stage(
            event_id=uuid.UUID(int=(actor << 100) + i * 7919 + 1),
            timestamp=HOUR0 + timedelta(minutes=i),
        )
        for i in range(90)
    ]
    fresh = dedup.admit(events + events[:5])
    store.apply(fresh, None)
    tracker.observe((TOPIC, actor), HOUR0 + timedelta(minutes=89), 0.0)
    body = {
        "store": store.to_obj(),
        "tracker": tracker.to_obj(),
        "dedup": dedup.to_obj(),
        "events_applied": len(fresh),
    }
    blobs.append(zlib.compress(json.dumps(body, separators=(",", ":")).encode(), 1))
checkpoint = Checkpoint(
    sequence=7,
    epoch=2,
    offsets={(TOPIC, 0): 90, (TOPIC, 1): 90},
    windows=blobs,
    revisions={"hourly:2026-10-01T00:00:00Z": 2000003},
    history=[{"window_id": "hourly:2026-09-30T23:00:00Z"}],
    created_at=1790000000.0,
)
with open(sys.argv[1], "wb") as out:
    out.write(checkpoint.encode())
