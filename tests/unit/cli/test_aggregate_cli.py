"""`codegen-metrics aggregate`: JSON Lines in, metrics out; bad lines counted, never fatal."""

from __future__ import annotations

import contextlib
import gzip
import io
import json
import re
import sys
from pathlib import Path

import pytest

from cli import aggregate as aggregate_module
from cli.aggregate import Progress
from cli.main import main
from cli.simulator import fleet_json_lines
from tests.datasets import BASE_TIME, completed_dict, failed_dict, started_dict, to_json

BAD_LINES = {
    2: b"{this is not json",
    4: b'{"event_type": "CODEGEN_EXPLODED", "correlation_id": "x"}',
    6: b"\xff\xfe garbage",
}


def jsonl_with_bad_lines() -> tuple[bytes, int]:
    """Seven lines: four good events, three bad (lines 2, 4 and 6), plus a blank line."""
    good = [
        to_json(started_dict()),
        to_json(completed_dict(quality_score=0.9)),
        to_json(failed_dict()),
        to_json(completed_dict(quality_score=0.7)),
    ]
    lines = [good[0], BAD_LINES[2], good[1], BAD_LINES[4], good[2], BAD_LINES[6], good[3]]
    return b"\n".join(lines) + b"\n\n", len(good)


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def bad_file(tmp_path: Path) -> Path:
    path = tmp_path / "events.jsonl"
    path.write_bytes(jsonl_with_bad_lines()[0])
    return path


def test_bad_lines_never_abort_the_run(bad_file: Path, capsys) -> None:
    code, out, _ = run(capsys, "aggregate", str(bad_file), "--format", "json")

    result = json.loads(out)
    assert code == 0
    assert result["events_processed"] == 4
    assert result["events_invalid"] == 3
    assert result["successful_generations"] == 2
    assert result["failed_generations"] == 1
    assert result["avg_quality_score"] == 0.8


def test_bad_lines_are_reported_on_stderr_with_their_line_numbers(bad_file: Path, capsys) -> None:
    _, _, err = run(capsys, "aggregate", str(bad_file), "--format", "json")

    assert "3 bad line(s)" in err
    reported = [int(n) for n in re.findall(r"line (\d+):", err)]
    assert reported == [2, 4, 6]
    assert "invalid JSON" in err
    assert "CODEGEN_EXPLODED" in err
    assert "UTF-8" in err
    assert "invalid_json: 1" in err


def test_blank_lines_are_skipped_not_counted_as_bad(tmp_path: Path, capsys) -> None:
    path = tmp_path / "blank.jsonl"
    path.write_bytes(b"\n" + to_json(started_dict()) + b"\n   \n\n")

    code, out, err = run(capsys, "aggregate", str(path), "--format", "json")

    assert code == 0
    assert json.loads(out)["events_invalid"] == 0
    assert json.loads(out)["events_processed"] == 1
    assert err == ""


def test_only_the_first_bad_lines_are_listed_but_all_are_counted(tmp_path: Path, capsys) -> None:
    path = tmp_path / "many_bad.jsonl"
    path.write_bytes(b"\n".join([b"nope"] * 25 + [to_json(completed_dict())]))

    code, out, err = run(capsys, "aggregate", str(path), "--format", "json")

    assert code == 0
    assert json.loads(out)["events_invalid"] == 25
    assert "25 bad line(s)" in err
    assert len(re.findall(r"line \d+:", err)) == aggregate_module.REPORT_FIRST_BAD


def test_line_numbers_stay_right_across_read_batches(tmp_path: Path, capsys) -> None:
    lines = list(fleet_json_lines(300, seed=1))
    assert len(lines) > aggregate_module.BATCH_LINES + 100
    bad_at = aggregate_module.BATCH_LINES + 57  # 1-based line number
    lines[bad_at - 1] = b"{broken"
    path = tmp_path / "big.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")

    code, out, err = run(capsys, "aggregate", str(path), "--format", "json")

    assert code == 0
    assert re.findall(r"line (\d+):", err) == [str(bad_at)]
    assert json.loads(out)["events_processed"] == len(lines) - 1


def test_line_numbers_count_blank_lines_in_every_batch(
    tmp_path: Path, capsys, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(aggregate_module, "BATCH_LINES", 3)
    good, bad = to_json(started_dict()), b"{broken"
    lines = [good, b"", bad, b"  ", good, bad, b"", b"", b"", good, bad]  # bad: 3, 6, 11
    path = tmp_path / "blanks.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")

    code, out, err = run(capsys, "aggregate", str(path), "--format", "json")

    assert code == 0
    assert re.findall(r"line (\d+):", err) == ["3", "6", "11"]
    assert json.loads(out)["events_processed"] == 3
    assert json.loads(out)["events_invalid"] == 3


def test_json_output_is_one_metrics_object(bad_file: Path, capsys) -> None:
    _, out, _ = run(capsys, "aggregate", str(bad_file), "--format", "json", "--window", "daily")

    result = json.loads(out)
    assert isinstance(result, dict)
    assert result["window_type"] == "daily"
    assert result["window_start"].startswith(BASE_TIME.date().isoformat())


def test_per_window_json_is_an_array_oldest_first(tmp_path: Path, capsys) -> None:
    path = tmp_path / "fleet.jsonl"
    path.write_bytes(b"\n".join(fleet_json_lines(40, seed=3, workflows_per_second=0.005)))

    code, out, _ = run(capsys, "aggregate", str(path), "--per-window", "--format", "json")

    results = json.loads(out)
    assert code == 0
    assert isinstance(results, list)
    assert len(results) > 1
    starts = [r["window_start"] for r in results]
    assert starts == sorted(starts)
    assert all(r["window_type"] == "hourly" for r in results)
    assert sum(r["events_processed"] for r in results) == len(path.read_bytes().splitlines())


def test_the_table_is_the_default_format(tmp_path: Path, capsys) -> None:
    path = tmp_path / "fleet.jsonl"
    path.write_bytes(b"\n".join(fleet_json_lines(50, seed=4)))

    code, out, _ = run(capsys, "aggregate", str(path))

    assert code == 0
    assert "hourly window" in out
    assert "success rate" in out
    for section in ("by model", "by node type", "by stage", "quality buckets", "cost buckets"):
        assert section in out


def test_per_window_table_prints_one_block_per_window(tmp_path: Path, capsys) -> None:
    path = tmp_path / "fleet.jsonl"
    path.write_bytes(b"\n".join(fleet_json_lines(40, seed=3, workflows_per_second=0.005)))

    _, out, _ = run(capsys, "aggregate", str(path), "--per-window")

    assert out.count("hourly window") > 1


def test_gzip_input_gives_the_same_result_as_plain(bad_file: Path, tmp_path: Path, capsys) -> None:
    gz = tmp_path / "events.jsonl.gz"
    gz.write_bytes(gzip.compress(bad_file.read_bytes()))

    code_plain, plain, err_plain = run(capsys, "aggregate", str(bad_file), "--format", "json")
    code_gz, zipped, err_gz = run(capsys, "aggregate", str(gz), "--format", "json")

    assert code_plain == code_gz == 0
    exclude = ("aggregation_id", "created_at", "aggregation_duration_ms", "items_per_second")
    plain_result, gz_result = json.loads(plain), json.loads(zipped)
    for key in exclude:
        del plain_result[key], gz_result[key]
    assert gz_result == plain_result
    assert err_gz == err_plain


def test_dash_reads_standard_input(monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    data, good = jsonl_with_bad_lines()
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data)))

    code, out, err = run(capsys, "aggregate", "-", "--format", "json")

    assert code == 0
    assert json.loads(out)["events_processed"] == good
    assert json.loads(out)["events_invalid"] == 3
    assert re.findall(r"line (\d+):", err) == ["2", "4", "6"]


def test_a_missing_file_exits_2_with_a_clear_message(tmp_path: Path, capsys) -> None:
    missing = tmp_path / "nope.jsonl"

    code, out, err = run(capsys, "aggregate", str(missing))

    assert code == 2
    assert out == ""
    assert "cannot read" in err
    assert str(missing) in err
    assert "No such file" in err


def test_a_directory_exits_2_with_a_clear_message(tmp_path: Path, capsys) -> None:
    code, _, err = run(capsys, "aggregate", str(tmp_path))

    assert code == 2
    assert "cannot read" in err


def test_a_corrupt_gzip_file_exits_2_with_a_clear_message(tmp_path: Path, capsys) -> None:
    path = tmp_path / "events.jsonl.gz"
    path.write_bytes(b"this is not gzip data at all")

    code, out, err = run(capsys, "aggregate", str(path))

    assert code == 2
    assert out == ""
    assert "error reading" in err
    assert str(path) in err


def test_an_empty_file_aggregates_to_zeros(tmp_path: Path, capsys) -> None:
    path = tmp_path / "empty.jsonl"
    path.write_bytes(b"")

    code, out, _ = run(capsys, "aggregate", str(path), "--format", "json")

    assert code == 0
    assert json.loads(out)["events_processed"] == 0


def test_an_unknown_window_is_a_usage_error(bad_file: Path, capsys) -> None:
    with pytest.raises(SystemExit) as caught:
        main(["aggregate", str(bad_file), "--window", "fortnightly"])

    assert caught.value.code == 2
    assert "fortnightly" in capsys.readouterr().err


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_the_progress_bar_draws_only_on_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    terminal, pipe = FakeTerminal(), io.StringIO()
    monkeypatch.setattr(aggregate_module.time, "monotonic", lambda: 1000.0)

    for stream in (terminal, pipe):
        bar = Progress(total_bytes=200, stream=stream)
        bar.update(100, lines=10)
        bar.close()

    assert "50.0%" in terminal.getvalue()
    assert "10 lines" in terminal.getvalue()
    assert pipe.getvalue() == ""


def test_the_progress_bar_without_a_known_size_counts_lines(monkeypatch) -> None:
    terminal = FakeTerminal()
    monkeypatch.setattr(aggregate_module.time, "monotonic", lambda: 1000.0)

    Progress(total_bytes=None, stream=terminal).update(0, lines=1234)

    assert "1,234 lines" in terminal.getvalue()


def test_the_progress_bar_draws_on_the_stderr_of_the_moment(monkeypatch) -> None:
    """Not the stderr of import time: a caller that redirects stderr silences it."""
    terminal = FakeTerminal()
    monkeypatch.setattr(aggregate_module.time, "monotonic", lambda: 1000.0)

    with contextlib.redirect_stderr(terminal):
        Progress(total_bytes=None).update(0, lines=7)

    assert "7 lines" in terminal.getvalue()


def test_per_window_charges_bad_lines_to_the_window_they_are_stamped_in(
    tmp_path: Path, capsys
) -> None:
    ten, eleven = BASE_TIME.replace(hour=10), BASE_TIME.replace(hour=11)
    lines = [
        to_json(completed_dict(timestamp=ten)),
        to_json(completed_dict(timestamp=eleven)),
        to_json(completed_dict(timestamp=eleven, quality_score=7)),  # invalid, stamped 11:00
        to_json(completed_dict(timestamp=eleven, total_cost_usd=1e308)),  # out of range, 11:00
        b"{not json",  # no timestamp: in no window
    ]
    path = tmp_path / "events.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")

    code, out, err = run(capsys, "aggregate", str(path), "--per-window", "--format", "json")

    assert code == 0
    assert [w["events_invalid"] for w in json.loads(out)] == [0, 2]
    assert "3 bad line(s)" in err and "1 of them in no window" in err


def test_aggregate_honours_the_reducer_and_bound_settings_of_the_environment(
    tmp_path: Path, capsys, monkeypatch: pytest.MonkeyPatch
) -> None:
    lines = [to_json(completed_dict(total_cost_usd=c, quality_score=0.9)) for c in (0.5, 2.0)]
    path = tmp_path / "events.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    monkeypatch.setenv("CODEGEN_METRICS_PIPELINE__MAX_COST_USD", "1")
    monkeypatch.setenv("CODEGEN_METRICS_REDUCER__QUALITY_BUCKET_EDGES", "[0.95, 0.99]")

    code, out, err = run(capsys, "aggregate", str(path), "--format", "json")

    result = json.loads(out)
    assert code == 0 and "out_of_range: 1" in err
    assert result["total_cost_usd"] == 0.5 and result["events_invalid"] == 1
    assert result["quality_score_buckets"] == {"low": 1, "medium": 0, "high": 0}


def test_an_invalid_setting_in_the_environment_exits_2_without_echoing_its_value(
    bad_file: Path, capsys, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CODEGEN_METRICS_KAFKA__SASL_PASSWD", "hunter2-secret")

    code, out, err = run(capsys, "aggregate", str(bad_file))

    assert code == 2 and out == ""
    assert "kafka.sasl_passwd" in err and "hunter2" not in err


def test_the_fold_runs_under_the_actors_collector_threshold_and_restores_pythons() -> None:
    import gc

    from cli.aggregate import young_collections

    before = gc.get_threshold()
    with young_collections(12_345):
        assert gc.get_threshold() == (12_345, *before[1:])
    assert gc.get_threshold() == before
    with young_collections(0):
        assert gc.get_threshold() == before
