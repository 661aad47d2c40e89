"""Output writer: derived from committed results, repaired on resume, never a partial or duplicate line."""

from __future__ import annotations

import json
import os
import sqlite3
from collections import Counter
from pathlib import Path

import pytest

from sluicegate._exceptions import ConfigError
from sluicegate.jobs import InputProblem, JobStore, OutputOrder, OutputWriter
from sluicegate.jobs import writer as writer_module

from .conftest import SETTINGS, failed, make_item, ok


def out_ids(path: Path) -> list[str]:
    """custom_ids of the output file; every line must be complete JSON."""
    data = path.read_bytes()
    assert not data or data.endswith(b"\n")
    return [json.loads(line)["custom_id"] for line in data.decode().splitlines()]


def open_pair(tmp_path: Path, order: OutputOrder = "completion") -> tuple[JobStore, OutputWriter]:
    """A store and its writer in tmp_path."""
    store = JobStore.open(tmp_path / "out.jsonl.db", settings=SETTINGS)
    return store, OutputWriter.open(tmp_path / "out.jsonl", store.output, order)


def finish(store: JobStore, writer: OutputWriter, n: int, *, sent: list[str] | None = None) -> None:
    """Admit items 0..n-1, 'send' the unfinished ones (recording ok results), commit, write and close."""
    for i in range(n):
        item = make_item(i)
        if store.admit(item) in ("new", "pending"):
            if sent is not None:
                sent.append(item.custom_id)
            store.record_result(ok(item))
            if store.maybe_commit():
                writer.write_committed()
    store.commit()
    writer.write_committed()
    writer.close()
    store.close()


def test_run_writes_each_id_once(tmp_path: Path) -> None:
    """A whole run leaves one complete line per id, and a re-run sends and writes nothing more."""
    store, writer = open_pair(tmp_path)
    finish(store, writer, 50)
    assert sorted(out_ids(tmp_path / "out.jsonl")) == sorted(f"id-{i}" for i in range(50))
    sent: list[str] = []
    store, writer = open_pair(tmp_path)
    finish(store, writer, 50, sent=sent)
    assert sent == []
    assert len(out_ids(tmp_path / "out.jsonl")) == 50


def test_writer_only_sees_committed_results(tmp_path: Path) -> None:
    """Recorded but uncommitted results are not written; after the crash they are re-sent and written once."""
    store, writer = open_pair(tmp_path)
    items = [make_item(i) for i in range(6)]
    for it in items[:4]:
        store.admit(it)
        store.record_result(ok(it))
    store.commit()
    assert writer.write_committed() == 4
    store.admit(items[4])
    store.record_result(ok(items[4]))
    assert writer.write_committed() == 0
    writer.close()
    store.db.conn.close()  # the process dies here: the last result was never committed
    store.db.reader.close()
    assert store.db.lock_fd is not None
    os.close(store.db.lock_fd)
    sent: list[str] = []
    store, writer = open_pair(tmp_path)
    finish(store, writer, 6, sent=sent)
    assert sent == ["id-4", "id-5"]
    assert Counter(out_ids(tmp_path / "out.jsonl")) == Counter(f"id-{i}" for i in range(6))


def test_partial_last_line_is_cut_and_completed(tmp_path: Path) -> None:
    """A kill mid-write leaves half a line: reopening cuts it and writes the committed line whole."""
    store, writer = open_pair(tmp_path)
    for i in range(3):
        store.admit(make_item(i))
        store.record_result(ok(make_item(i)))
    store.commit()
    writer.write_committed()
    writer.close()
    store.close()
    path = tmp_path / "out.jsonl"
    lines = path.read_bytes().splitlines(keepends=True)
    path.write_bytes(b"".join(lines[:2]) + lines[2][:17])
    store, writer = open_pair(tmp_path)
    assert writer.lines_written == 2
    finish(store, writer, 3)
    assert out_ids(path) == ["id-0", "id-1", "id-2"]


def test_committed_but_unwritten_lines_are_appended(tmp_path: Path) -> None:
    """A kill between commit and write: the committed lines are written on reopen, without re-sending."""
    store, writer = open_pair(tmp_path)
    for i in range(5):
        store.admit(make_item(i))
        store.record_result(ok(make_item(i)))
    store.commit()
    writer.close()  # nothing written yet
    store.close()
    sent: list[str] = []
    store, writer = open_pair(tmp_path)
    finish(store, writer, 5, sent=sent)
    assert sent == []
    assert out_ids(tmp_path / "out.jsonl") == [f"id-{i}" for i in range(5)]


def test_file_ahead_of_store_is_rewritten(tmp_path: Path) -> None:
    """If the file has more lines than the store (commits lost to a power cut), it is rebuilt from the store."""
    store, writer = open_pair(tmp_path)
    finish(store, writer, 4)
    conn = sqlite3.connect(tmp_path / "out.jsonl.db")
    lost = "SELECT seq FROM entries WHERE custom_id IN ('id-2', 'id-3')"
    conn.execute(f"DELETE FROM outputs WHERE seq IN ({lost})")
    conn.execute("UPDATE entries SET state = 0, seq = NULL WHERE custom_id IN ('id-2', 'id-3')")
    conn.commit()
    conn.close()
    sent: list[str] = []
    store, writer = open_pair(tmp_path)
    assert out_ids(tmp_path / "out.jsonl") == ["id-0", "id-1"]
    finish(store, writer, 4, sent=sent)
    assert sent == ["id-2", "id-3"]
    assert Counter(out_ids(tmp_path / "out.jsonl")) == Counter(f"id-{i}" for i in range(4))


def test_foreign_file_is_rewritten(tmp_path: Path) -> None:
    """An output file that is not this job's output is replaced by the store's lines."""
    store, writer = open_pair(tmp_path)
    finish(store, writer, 3)
    (tmp_path / "out.jsonl").write_text('{"custom_id": "someone-else"}\n')
    store, writer = open_pair(tmp_path)
    writer.close()
    store.close()
    assert out_ids(tmp_path / "out.jsonl") == ["id-0", "id-1", "id-2"]
    assert not (tmp_path / "out.jsonl.partial").exists()


def test_ordered_output_writes_the_finished_prefix(tmp_path: Path) -> None:
    """In input order a line is written only when every earlier line is finished."""
    store, writer = open_pair(tmp_path, "input")
    items = [make_item(i) for i in range(4)]
    for it in items:
        store.admit(it)
    store.record_result(ok(items[1]))
    store.record_result(ok(items[3]))
    store.commit()
    assert writer.write_committed() == 0
    store.record_result(ok(items[0]))
    store.commit()
    assert writer.write_committed() == 2
    writer.close()
    store.close()
    assert out_ids(tmp_path / "out.jsonl") == ["id-0", "id-1"]
    store, writer = open_pair(tmp_path, "input")
    assert writer.lines_written == 2
    finish(store, writer, 4)
    assert out_ids(tmp_path / "out.jsonl") == ["id-0", "id-1", "id-2", "id-3"]


def test_retry_failed_then_rewrite_has_each_id_once(tmp_path: Path) -> None:
    """After reset_failed, retries and rewrite, every id appears once with its latest result."""
    store, writer = open_pair(tmp_path)
    items = [make_item(i) for i in range(3)]
    for it in items:
        store.admit(it)
    store.record_result(ok(items[0]))
    store.record_result(failed(items[1]))
    store.record_result(failed(items[2]))
    store.commit()
    writer.write_committed()
    writer.close()
    store.close()
    store = JobStore.open(tmp_path / "out.jsonl.db", settings=SETTINGS)
    assert store.reset_failed() == 2
    writer = OutputWriter.open(tmp_path / "out.jsonl", store.output, "completion")
    assert out_ids(tmp_path / "out.jsonl") == ["id-0"]  # the stale error lines are gone at once
    for it in items:
        if store.admit(it) == "pending":
            store.record_result(ok(it))
    store.commit()
    writer.write_committed()
    writer.rewrite()
    writer.close()
    store.close()
    lines = [json.loads(x) for x in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert sorted(x["custom_id"] for x in lines) == ["id-0", "id-1", "id-2"]
    assert all(x["result"]["type"] == "succeeded" for x in lines)


def test_reset_then_crash_before_rewrite_is_repaired(tmp_path: Path) -> None:
    """A crash after reset_failed but before the rewrite still ends with one line per id."""
    store, writer = open_pair(tmp_path)
    items = [make_item(i) for i in range(3)]
    for it in items:
        store.admit(it)
    store.record_result(failed(items[0]))
    store.record_result(ok(items[1]))
    store.commit()
    writer.write_committed()
    writer.close()
    store.reset_failed()
    store.close()
    store, writer = open_pair(tmp_path)
    finish(store, writer, 3)
    assert Counter(out_ids(tmp_path / "out.jsonl")) == Counter(["id-0", "id-1", "id-2"])


def test_ordered_output_with_invalid_lines_and_an_interrupted_run(tmp_path: Path) -> None:
    """In input order a bad line fills its own slot; an item left pending by a stopped run holds back what follows."""
    store, writer = open_pair(tmp_path, "input")
    items = [make_item(i) for i in (0, 2, 3)]
    bad = InputProblem(line=2, index=1, custom_id=None, field=None, message="not valid JSON")
    store.admit(items[0])
    store.record_problem(bad)
    store.admit(items[1])
    store.admit(items[2])
    store.record_result(ok(items[2]))
    store.record_result(ok(items[0]))
    store.record_result(failed(items[1], "aborted"))  # the run stopped before this one finished: still pending
    store.commit()
    writer.write_committed()
    writer.close()
    store.close()
    assert out_ids(tmp_path / "out.jsonl") == ["id-0", "line:2"]
    store, writer = open_pair(tmp_path, "input")
    assert [store.admit(it) for it in items] == ["done", "pending", "done"]
    assert store.record_problem(bad) == "known"
    store.record_result(ok(items[1]))
    store.commit()
    assert writer.write_committed() == 2
    writer.close()
    store.close()
    assert out_ids(tmp_path / "out.jsonl") == ["id-0", "line:2", "id-2", "id-3"]


@pytest.mark.parametrize("chunk", [7, 1 << 20])
def test_resume_compares_first_and_last_lines(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, chunk: int) -> None:
    """A file that is this job's is appended to in place; one whose first or last line differs is rebuilt."""
    monkeypatch.setattr(writer_module, "_CHUNK", chunk)
    store, writer = open_pair(tmp_path)
    finish(store, writer, 3)
    path = tmp_path / "out.jsonl"
    good = path.read_bytes()
    inode = path.stat().st_ino
    store, writer = open_pair(tmp_path)
    writer.close()
    store.close()
    assert path.stat().st_ino == inode  # kept, not rewritten
    lines = good.splitlines(keepends=True)
    for tampered in (
        lines[0].replace(b"id-0", b"id-9") + lines[1] + lines[2],  # first line differs late in the line
        lines[0] + lines[1] + lines[2].replace(b"id-2", b"id-7"),  # last line differs, same length
        lines[0] + lines[1] + lines[2][:-2] + b" }\n",  # last line differs in length
    ):
        path.write_bytes(tampered)
        store, writer = open_pair(tmp_path)
        writer.close()
        store.close()
        assert path.read_bytes() == good


def test_resume_after_retry_failed_appends_past_the_gaps(tmp_path: Path) -> None:
    """After reset_failed leaves gaps in the output sequence, a resumed writer still continues after its last line."""
    store, writer = open_pair(tmp_path)
    items = [make_item(i) for i in range(5)]
    for it in items[:3]:
        store.admit(it)
    store.record_result(failed(items[0]))
    store.record_result(ok(items[1]))
    store.record_result(failed(items[2]))
    store.commit()
    writer.write_committed()
    writer.close()
    assert store.reset_failed() == 2
    store.close()
    store, writer = open_pair(tmp_path)  # rebuilt: only id-1 is left
    store.admit(items[0])
    store.record_result(ok(items[0]))
    store.commit()
    writer.write_committed()
    writer.close()
    store.close()
    inode = (tmp_path / "out.jsonl").stat().st_ino
    store, writer = open_pair(tmp_path)
    assert writer.lines_written == 2
    assert store.output.seq_at(1) > 1  # positions and seqs differ now
    finish(store, writer, 5)
    assert (tmp_path / "out.jsonl").stat().st_ino == inode  # appended in place, not rebuilt
    assert out_ids(tmp_path / "out.jsonl") == ["id-1", "id-0", "id-2", "id-3", "id-4"]


def test_written_lines_reach_the_file_at_once(tmp_path: Path) -> None:
    """Lines written after a commit are in the file right away (another reader sees them), before any fsync."""
    store = JobStore.open(tmp_path / "out.jsonl.db", settings=SETTINGS)
    writer = OutputWriter.open(tmp_path / "out.jsonl", store.output, "completion", fsync_interval=3600.0)
    for i in range(3):
        store.admit(make_item(i))
        store.record_result(ok(make_item(i)))
    store.commit()
    assert writer.write_committed() == 3
    assert out_ids(tmp_path / "out.jsonl") == ["id-0", "id-1", "id-2"]
    writer.close()
    store.close()


def test_unusable_output_path_is_a_config_error(tmp_path: Path) -> None:
    """An output path that is a folder gives a ConfigError naming it, not a raw OSError."""
    (tmp_path / "out.jsonl").mkdir()
    store = JobStore.open(tmp_path / "out.jsonl.db", settings=SETTINGS)
    with pytest.raises(ConfigError, match="cannot write the output file"):
        OutputWriter.open(tmp_path / "out.jsonl", store.output, "completion")
    store.close()
