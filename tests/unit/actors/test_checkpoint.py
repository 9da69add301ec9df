"""Checkpoint files (version 2 binary, version 1 still read) and window actor snapshots."""

from __future__ import annotations

import base64
import json
import uuid
import zlib
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from actors.checkpoint import CheckpointStore
from models.metrics import EnumMetricsWindow
from models.settings import ReducerSettings
from reducer.dedup import DedupFilter
from reducer.nodes.checkpoint import MAGIC, VERSION, Checkpoint, Source
from reducer.nodes.window import decode_snapshot, encode_snapshot
from reducer.panes import PaneStore
from reducer.watermark import WatermarkTracker
from tests.datasets import stage

DATA = Path(__file__).parent / "data"
HOUR0 = datetime(2026, 10, 1, 0, tzinfo=UTC)
TOPIC = "dev.codegen.stage_completed.v1"


def sample(sequence: int = 3, windows: list[bytes] | None = None) -> Checkpoint:
    return Checkpoint(
        sequence=sequence,
        epoch=4,
        offsets={(TOPIC, 0): 17, (TOPIC, 1): 0, ("other", 5): 2**40},
        windows=windows if windows is not None else [bytes(range(256)) * 3, b"", b"\0" * 9],
        revisions={"hourly:2026-10-01T00:00:00Z": 4_000_002},
        history=[{"window_id": "hourly:2026-09-30T23:00:00Z", "x": [1.5, None]}],
        created_at=1790000000.25,
    )


def encode_v1(checkpoint: Checkpoint) -> bytes:
    """Version 1 exactly as commit 0aaffcc wrote it: zlib(JSON) with base64 window blobs."""
    body = {
        "sequence": checkpoint.sequence,
        "epoch": checkpoint.epoch,
        "offsets": [[t, p, o] for (t, p), o in sorted(checkpoint.offsets.items())],
        "windows": [base64.b64encode(w).decode() for w in checkpoint.windows],
        "revisions": checkpoint.revisions,
        "history": checkpoint.history,
        "created_at": checkpoint.created_at,
    }
    payload = zlib.compress(json.dumps(body, separators=(",", ":")).encode(), 1)
    return MAGIC + bytes([1]) + zlib.crc32(payload).to_bytes(4, "big") + payload


def test_version_2_round_trip_keeps_window_blobs_raw() -> None:
    checkpoint = sample()
    data = checkpoint.encode()
    assert VERSION == 2
    assert data[:5] == MAGIC + bytes([2])
    assert data == b"".join(checkpoint.encode_parts())
    assert bytes(range(256)) * 3 in data  # not base64, not compressed
    assert Checkpoint.decode(data) == checkpoint
    assert Checkpoint.decode(sample(windows=[]).encode()) == sample(windows=[])


def test_version_1_files_still_decode() -> None:
    checkpoint = sample()
    assert Checkpoint.decode(encode_v1(checkpoint)) == checkpoint


def test_a_version_1_checkpoint_from_the_old_code_restores_window_state() -> None:
    """checkpoint-v1.ckpt was written by the version-1 code (see make_checkpoint_v1.py): two
    window actors' blobs, each 90 events (5 of them sent twice) with their dedup ids."""
    checkpoint = Checkpoint.decode((DATA / "checkpoint-v1.ckpt").read_bytes())
    assert (checkpoint.sequence, checkpoint.epoch, len(checkpoint.windows)) == (7, 2, 2)
    assert checkpoint.offsets == {(TOPIC, 0): 90, (TOPIC, 1): 90}
    store = PaneStore(ReducerSettings(), list(EnumMetricsWindow))
    tracker = WatermarkTracker(60, 30)
    dedup = DedupFilter(3600)
    applied = 0
    for blob in checkpoint.windows:  # as one WindowActor restoring both (fewer actors)
        body, restored = decode_snapshot(blob, 3600)
        store.load(body["store"])
        tracker.load(body["tracker"], 0.0)
        dedup.merge(restored)
        applied += int(body["events_applied"])
    assert applied == 180
    assert dedup.tracked == 180 and dedup.dropped == 10
    assert sorted(store.panes) == [HOUR0, HOUR0 + timedelta(hours=1)]
    replay = [
        stage(
            event_id=uuid.UUID(int=(actor << 100) + i * 7919 + 1),
            timestamp=HOUR0 + timedelta(minutes=i),
        )
        for actor in range(2)
        for i in range(90)
    ]
    assert dedup.admit(replay) == []
    # and it upgrades: written again as version 2, it reads back the same
    again = Checkpoint.decode(checkpoint.encode())
    assert again == checkpoint


def test_window_snapshot_round_trip() -> None:
    dedup = DedupFilter(3600)
    keys = np.random.default_rng(1).integers(0, 2**64, size=5000, dtype=np.uint64)
    dedup.admit_keys(keys, [100 + i % 3 for i in range(len(keys))])
    body = {"store": {"panes": {}, "rollups": [], "late_events": 4}, "tracker": {}, "n": 1}
    blob = encode_snapshot(body, dedup)
    assert blob[:4] == b"CMW2"
    assert keys[:1].astype("<u8").tobytes() in blob  # the ids raw
    got_body, got = decode_snapshot(blob, 3600)
    assert got_body == body
    assert got.tracked == dedup.tracked == 5000
    assert {h: a.tolist() for h, a in got.hours().items()} == {
        h: a.tolist() for h, a in dedup.hours().items()
    }
    for bad in (blob[:-1], blob + b"x", blob[:8], blob[:4] + b"\xff" * 8 + blob[12:]):
        with pytest.raises((ValueError, zlib.error)):
            decode_snapshot(bad, 3600)


# -- the store: newest readable file wins ------------------------------------------------------


def test_store_writes_atomically_and_keeps_the_newest(tmp_path: Path) -> None:
    store = CheckpointStore(tmp_path, kept=2)
    for sequence in (1, 2, 3):
        store.write(sample(sequence))
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "checkpoint-000000000002.ckpt",
        "checkpoint-000000000003.ckpt",
    ]
    assert store.latest() == sample(3)


def _newest(tmp_path: Path) -> Path:
    return sorted(tmp_path.glob("checkpoint-*.ckpt"))[-1]


@pytest.mark.parametrize(
    "damage",
    [
        pytest.param(lambda d: d[: len(d) // 2], id="half-written"),
        pytest.param(lambda d: d[:7], id="header-only"),
        pytest.param(lambda d: b"", id="empty"),
        pytest.param(lambda d: d[:-1] + bytes([d[-1] ^ 1]), id="flipped-bit"),
        pytest.param(lambda d: b"XXXX" + d[4:], id="bad-magic"),
        pytest.param(lambda d: d[:4] + bytes([99]) + d[5:], id="unknown-version"),
        pytest.param(lambda d: d[:4] + bytes([1]) + d[5:], id="v2-body-labelled-v1"),
    ],
)
def test_a_damaged_newest_file_is_skipped_for_the_previous(tmp_path: Path, damage) -> None:
    store = CheckpointStore(tmp_path)
    store.write(sample(1))
    store.write(sample(2))
    newest = _newest(tmp_path)
    newest.write_bytes(damage(newest.read_bytes()))
    assert store.latest() == sample(1)


def test_a_well_checksummed_but_malformed_body_is_skipped(tmp_path: Path) -> None:
    """Layout errors behind a valid CRC (a writer bug) are refused too."""
    store = CheckpointStore(tmp_path)
    store.write(sample(1))
    good = sample(2).encode()
    for body in (good[9:-3], good[9:] + b"\0", b"\x05" + b"\0" * 7 + b"abc"):
        data = MAGIC + bytes([2]) + zlib.crc32(body).to_bytes(4, "big") + body
        (tmp_path / "checkpoint-000000000002.ckpt").write_bytes(data)
        assert store.latest() == sample(1)


def test_an_upgrade_restores_from_a_version_1_file_then_writes_version_2(tmp_path: Path) -> None:
    store = CheckpointStore(tmp_path)
    (tmp_path / "checkpoint-000000000005.ckpt").write_bytes(encode_v1(sample(5)))
    assert store.latest() == sample(5)
    store.write(sample(6))
    assert _newest(tmp_path).read_bytes()[4] == 2
    assert store.latest() == sample(6)
    _newest(tmp_path).write_bytes(b"CMCK\x02garbage")  # a bad v2 file: back to the v1 one
    assert store.latest() == sample(5)


def test_a_leftover_temporary_file_is_ignored(tmp_path: Path) -> None:
    store = CheckpointStore(tmp_path)
    store.write(sample(1))
    (tmp_path / "checkpoint-000000000002.tmp").write_bytes(sample(2).encode()[:100])
    assert store.latest() == sample(1)


def _framed(header: object, windows: list[bytes] = ()) -> bytes:
    """A version-2 file with a valid CRC around any header (crafted, not by the writer)."""
    sections = [zlib.compress(json.dumps(header).encode()), *windows]
    body = b"".join(len(s).to_bytes(8, "little") + s for s in sections)
    return MAGIC + bytes([2]) + zlib.crc32(body).to_bytes(4, "big") + body


@pytest.mark.parametrize(
    "header",
    [
        pytest.param([1, 2, 3], id="header-a-list"),
        pytest.param({"sequence": "x" * 10}, id="missing-keys"),
        pytest.param({**json.loads(json.dumps({"sequence": 1})), "offsets": 5}, id="offsets-int"),
        pytest.param("nested " * 3, id="header-a-string"),
    ],
)
def test_any_exception_from_a_crafted_file_falls_back_to_the_previous(
    tmp_path: Path, header: object
) -> None:
    store = CheckpointStore(tmp_path)
    store.write(sample(1))
    (tmp_path / "checkpoint-000000000009.ckpt").write_bytes(_framed(header))
    assert store.latest() == sample(1)


def test_a_file_uri_is_the_same_store_as_its_path(tmp_path: Path) -> None:
    by_uri = CheckpointStore(f"file://{tmp_path}/nested/instance", kept=2)
    for sequence in (1, 2, 3):
        by_uri.write(sample(sequence))
    by_path = CheckpointStore(tmp_path / "nested" / "instance")
    assert by_path.latest() == sample(3)
    assert len(list((tmp_path / "nested" / "instance").glob("*.ckpt"))) == 2


def test_set_aside_moves_every_checkpoint_away_so_none_is_found(tmp_path: Path) -> None:
    store = CheckpointStore(tmp_path)
    assert store.set_aside() is None
    store.write(sample(1))
    store.write(sample(2))
    folder = store.set_aside()
    assert folder is not None and store.latest() is None
    assert sorted(p.name for p in Path(folder).iterdir()) == [
        "checkpoint-000000000001.ckpt",
        "checkpoint-000000000002.ckpt",
    ]
    store.write(sample(1))  # a new run numbers from 1 again, untroubled by the old files
    assert store.latest() == sample(1)


def test_the_source_of_the_offsets_round_trips_and_old_files_have_none() -> None:
    source = Source("cluster-a", "group-1", {"in.started": 4, "in.failed": 2})
    checkpoint = replace(sample(4), source=source)
    assert Checkpoint.decode(checkpoint.encode()).source == source
    assert Checkpoint.decode(sample(4).encode()).source is None
