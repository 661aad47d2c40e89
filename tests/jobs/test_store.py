"""Job store: admission states across runs, problems, results, batched commits, counts and output order."""

from __future__ import annotations

import json
import os
import sqlite3
from dataclasses import replace
from pathlib import Path

import pytest

from sluicegate._exceptions import ConfigError, UsageError
from sluicegate._models import Usage
from sluicegate.jobs import InputProblem, JobBusyError, JobMismatchError, JobStore, StoreCounts
from sluicegate.jobs import _lookups as lookups_module
from sluicegate.jobs.batch_ledger import BatchLedger

from .conftest import SETTINGS, failed, make_item, ok


def open_store(tmp_path: Path, **kw: object) -> JobStore:
    """A store in tmp_path with the standard settings."""
    return JobStore.open(tmp_path / "job.db", settings=kw.pop("settings", SETTINGS), **kw)  # type: ignore[arg-type]


def ids(lines: list[str]) -> list[str]:
    """The custom_ids of output lines."""
    return [json.loads(line)["custom_id"] for line in lines]


def test_admit_new_then_states_on_resume(tmp_path: Path) -> None:
    """First sight is "new"; on reopen an unfinished item is "pending" and finished ones are "done"/"failed"."""
    items = [make_item(i) for i in range(3)]
    with open_store(tmp_path) as store:
        assert [store.admit(it) for it in items] == ["new", "new", "new"]
        assert store.record_result(ok(items[0]))
        assert store.record_result(failed(items[1]))
    with open_store(tmp_path) as store:
        assert [store.admit(it) for it in items] == ["done", "failed", "pending"]
        assert store.counts() == StoreCounts(total=3, pending=1, done=1, failed=1, invalid=0)


def test_changed_params_and_moved_lines(tmp_path: Path) -> None:
    """Different params for the same id and line, a new id where an old one was, or an id moved later: "changed"."""
    with open_store(tmp_path) as store:
        for i in range(3):
            store.admit(make_item(i))
    with open_store(tmp_path) as store:
        assert store.admit(make_item(0, prompt="edited")) == "changed"
        assert store.admit(make_item(1, custom_id="other")) == "changed"
        assert store.admit(make_item(0, custom_id="id-2")) == "changed"
        assert store.admit(make_item(3)) == "new"  # appended lines are simply new work


def test_duplicate_id_in_one_run_and_on_resume(tmp_path: Path) -> None:
    """A later line repeating an id is "duplicate": counted, never output, never replacing the first, on resume too."""
    first, dup = make_item(0, custom_id="same"), make_item(1, custom_id="same")
    problem = InputProblem.duplicate_of(dup)
    with open_store(tmp_path) as store:
        assert store.admit(first) == "new"
        assert store.admit(dup) == "duplicate"
        assert store.record_problem(problem) == "new"
        assert store.record_result(ok(first))
        store.commit()
        assert ids(list(store.output.lines("input"))) == ["same"]
        assert ids(list(store.output.lines("completion"))) == ["same"]
        lines = [json.loads(x) for x in store.output.lines("input")]
        assert lines[0]["result"]["type"] == "succeeded"
    with open_store(tmp_path) as store:
        assert store.admit(first) == "done"
        assert store.admit(dup) == "duplicate"
        assert store.record_problem(problem) == "known"
        assert not store.admit_problem(problem)
        assert store.counts() == StoreCounts(total=2, pending=0, done=1, failed=0, invalid=0, duplicate=1)


def test_duplicate_reached_only_after_a_crash(tmp_path: Path) -> None:
    """A duplicate line first reached in a resumed run (the first run died before it) is still "duplicate"."""
    with open_store(tmp_path) as store:
        store.admit(make_item(0, custom_id="x"))
    with open_store(tmp_path) as store:
        assert store.admit(make_item(0, custom_id="x")) == "pending"
        assert store.admit(make_item(5, custom_id="x")) == "duplicate"


def test_problem_where_an_item_was_is_changed(tmp_path: Path) -> None:
    """A bad line at a position that held an item in an earlier run means the input changed."""
    with open_store(tmp_path) as store:
        store.admit(make_item(0))
    with open_store(tmp_path) as store:
        bad = InputProblem(line=1, index=0, custom_id=None, field=None, message="not valid JSON")
        assert store.record_problem(bad) == "changed"
        with pytest.raises(JobMismatchError, match="line 1"):
            store.admit_problem(bad)


def test_not_final_results_keep_items_pending(tmp_path: Path) -> None:
    """Aborted, budget, authentication and quota results are not recorded: the items stay pending for a re-run."""
    items = [make_item(i) for i in range(4)]
    with open_store(tmp_path) as store:
        for it, kind in zip(items, ["aborted", "budget_exceeded", "authentication", "quota_exceeded"], strict=True):
            store.admit(it)
            assert not store.record_result(failed(it, kind))  # type: ignore[arg-type]
        store.commit()
        assert store.counts().pending == 4
        assert list(store.output.lines("completion")) == []


def test_second_result_and_unknown_id(tmp_path: Path) -> None:
    """A second result for a finished item is ignored (no id twice); a result for an unknown id is a misuse."""
    item = make_item(0)
    with open_store(tmp_path) as store:
        store.admit(item)
        assert store.record_result(ok(item))
        assert not store.record_result(failed(item))
        store.commit()
        assert len(list(store.output.lines("completion"))) == 1
        with pytest.raises(UsageError):
            store.record_result(ok(make_item(9)))


def test_record_result_columns_and_totals(tmp_path: Path) -> None:
    """Attempts, usage and cost are stored; totals sum finished items; the result line is the Batch format."""
    a, b = make_item(0), make_item(1)
    with open_store(tmp_path) as store:
        store.admit(a)
        store.admit(b)
        store.record_result(ok(a, tokens=10, cost=1.25, attempts=2))
        store.record_result(ok(b, tokens=1, cost=0.25))
        usage, cost, unpriced = store.totals()
        assert (usage.input_tokens, usage.output_tokens, cost, unpriced) == (11, 22, 1.5, 0)
    conn = sqlite3.connect(tmp_path / "job.db")
    row = conn.execute(
        "SELECT attempts, input_tokens, cost, result FROM entries JOIN outputs USING (seq) WHERE custom_id = 'id-0'"
    ).fetchone()
    conn.close()
    assert row[:3] == (2, 10, 1.25)
    assert json.loads(row[3]) == ok(a).to_batch_line()


def test_batched_commit_by_count_and_time(tmp_path: Path) -> None:
    """maybe_commit commits after commit_every records or commit_interval seconds, and only then is output visible."""
    now = [0.0]
    store = open_store(tmp_path, commit_every=3, commit_interval=10.0, clock=lambda: now[0])
    items = [make_item(i) for i in range(5)]
    for it in items[:2]:
        store.admit(it)
    assert not store.maybe_commit()
    store.record_result(ok(items[0]))
    assert store.maybe_commit()  # 3 records
    assert store.output.count("completion") == 1
    store.admit(items[2])
    store.record_result(ok(items[1]))
    assert not store.maybe_commit()
    assert store.output.count("completion") == 1  # the uncommitted result is not visible to the output side
    now[0] = 10.0
    assert store.maybe_commit()
    assert store.output.count("completion") == 2
    assert not store.maybe_commit()  # nothing new
    store.record_result(ok(items[2]))
    assert not store.maybe_commit(15.0)
    assert store.maybe_commit(20.0)  # a time passed in counts like the store's own clock
    store.close()


def test_close_without_commit_loses_only_the_batch(tmp_path: Path) -> None:
    """A connection dropped without commit (a crash) loses the open batch only; those items are new or pending."""
    items = [make_item(i) for i in range(4)]
    store = open_store(tmp_path)
    for it in items[:3]:
        store.admit(it)
    store.record_result(ok(items[0]))
    store.commit()
    store.record_result(ok(items[1]))
    store.admit(items[3])
    store.db.conn.close()  # simulate the process dying: no commit
    store.db.reader.close()
    assert store.db.lock_fd is not None
    os.close(store.db.lock_fd)
    with open_store(tmp_path) as again:
        assert [again.admit(it) for it in items] == ["done", "pending", "pending", "new"]


def test_settings_mismatch_and_restart(tmp_path: Path) -> None:
    """Other settings raise JobMismatchError naming the change, unless restart, which discards the store."""
    with open_store(tmp_path) as store:
        store.admit(make_item(0))
    other = {**SETTINGS, "model": "m2"}
    with pytest.raises(JobMismatchError, match="model was 'm', now 'm2'") as info:
        open_store(tmp_path, settings=other)
    assert isinstance(info.value, ConfigError)
    with open_store(tmp_path, settings=other, restart=True) as store:
        assert store.counts().total == 0
        assert store.admit(make_item(0)) == "new"


def test_settings_refuse_credentials(tmp_path: Path) -> None:
    """The store refuses to keep anything that looks like a key."""
    with pytest.raises(ConfigError, match="credential"):
        open_store(tmp_path, settings={"api_key": "x"})
    with pytest.raises(ConfigError, match="credential"):
        open_store(tmp_path, settings={"endpoint": "sk-ant-abc"})


def test_second_opener_is_refused(tmp_path: Path) -> None:
    """Two runs cannot use one store at once."""
    with open_store(tmp_path), pytest.raises(JobBusyError):
        open_store(tmp_path)
    with open_store(tmp_path):
        pass


def test_input_order_is_the_finished_prefix(tmp_path: Path) -> None:
    """Input-order output stops at the first unfinished index; completion order is commit order."""
    items = [make_item(i) for i in range(4)]
    with open_store(tmp_path) as store:
        for it in items:
            store.admit(it)
        for i in (2, 0, 3):
            store.record_result(ok(items[i]))
        store.commit()
        assert ids(list(store.output.lines("input"))) == ["id-0"]
        assert ids(list(store.output.lines("completion"))) == ["id-2", "id-0", "id-3"]
        assert ids(list(store.output.lines("completion", 1))) == ["id-0", "id-3"]
        assert store.output.count("input") == 1
        store.record_result(failed(items[1]))
        store.commit()
        assert ids(list(store.output.lines("input"))) == ["id-0", "id-1", "id-2", "id-3"]
        assert ids(list(store.output.lines("input", 2))) == ["id-2", "id-3"]
        assert store.output.count("input") == 4


def test_reset_failed(tmp_path: Path) -> None:
    """reset_failed puts failed items (not invalid lines) back to pending and drops their output lines."""
    items = [make_item(i) for i in range(3)]
    with open_store(tmp_path) as store:
        for it in items:
            store.admit(it)
        store.record_result(ok(items[0]))
        store.record_result(failed(items[1]))
        store.record_problem(InputProblem(line=9, index=3, custom_id=None, field=None, message="bad"))
        mark = store.output.mark()
        assert store.reset_failed() == 1
        assert store.output.mark() != mark
        assert store.counts() == StoreCounts(total=4, pending=2, done=1, failed=0, invalid=1)
        assert ids(list(store.output.lines("completion"))) == ["id-0", "line:9"]
        assert store.admit(items[1]) == "pending"
        store.record_result(ok(items[1]))
        store.commit()
        assert ids(list(store.output.lines("completion"))) == ["id-0", "line:9", "id-1"]
        assert ids(list(store.output.lines("completion", 2))) == ["id-1"]
        # seqs 0, 2 and 3: the reset left a gap
        assert (store.output.seq_at(2), store.output.count("completion")) == (3, 3)
        assert store.reset_failed() == 0


def test_unusable_paths_are_config_errors(tmp_path: Path) -> None:
    """A missing folder or a file that is not a job store gives a ConfigError, not a raw sqlite error."""
    with pytest.raises(ConfigError, match="cannot open"):
        JobStore.open(tmp_path / "missing" / "job.db", settings=SETTINGS)
    (tmp_path / "junk.db").write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(ConfigError, match="not a usable"):
        JobStore.open(tmp_path / "junk.db", settings=SETTINGS)


def test_public_surface() -> None:
    """The jobs package exports exactly what the runner builds on."""
    import sluicegate.jobs as jobs

    assert sorted(jobs.__all__) == [
        "AdmitState",
        "Defaults",
        "InputProblem",
        "JobBusyError",
        "JobMismatchError",
        "JobStore",
        "OutputOrder",
        "OutputWriter",
        "OversizeLine",
        "ProblemState",
        "Provider",
        "StoreCounts",
        "iter_lines",
        "params_fingerprint",
        "read_requests",
        "result_line",
    ]
    assert all(hasattr(jobs, name) for name in jobs.__all__)


def test_problem_without_id_is_known_on_resume(tmp_path: Path) -> None:
    """A bad line with no usable id is recorded once as line:<n> and recognised, not re-output, on resume."""
    bad = InputProblem(line=3, index=1, custom_id=None, field=None, message="not valid JSON")
    with open_store(tmp_path) as store:
        store.admit(make_item(0))
        assert store.admit_problem(bad)
    with open_store(tmp_path) as store:
        assert store.admit(make_item(0)) == "pending"
        assert store.record_problem(bad) == "known"
        assert ids(list(store.output.lines("completion"))) == ["line:3"]


def test_fallback_id_never_collides_with_a_real_id(tmp_path: Path) -> None:
    """An id-less bad line at line 3 and a later real id "line-3" are both kept: neither is a duplicate."""
    bad = InputProblem(line=3, index=1, custom_id=None, field=None, message="not valid JSON")
    real = make_item(2, custom_id="line-3")
    with open_store(tmp_path) as store:
        store.admit(make_item(0))
        assert store.admit_problem(bad)
        assert store.admit(real) == "new"
        store.record_result(ok(real))
        store.commit()
        assert ids(list(store.output.lines("completion"))) == ["line:3", "line-3"]


def test_problem_recorded_under_the_older_fallback_name_is_known(tmp_path: Path) -> None:
    """Stores written when the fallback was `line-<n>` resume without calling the input changed."""
    bad = InputProblem(line=3, index=1, custom_id=None, field=None, message="not valid JSON")
    with open_store(tmp_path) as store:
        store.admit(make_item(0))
        assert store.admit_problem(bad)
        store.commit()
    with sqlite3.connect(tmp_path / "job.db") as conn:
        conn.execute("UPDATE entries SET custom_id = 'line-3' WHERE custom_id = 'line:3'")
    with open_store(tmp_path) as store:
        assert store.admit(make_item(0)) == "pending"
        assert store.record_problem(bad) == "known"


@pytest.mark.parametrize("in_memory", [100_000, 1, 0])
def test_id_of_an_earlier_bad_line_is_a_duplicate(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, in_memory: int
) -> None:
    """A line reusing an earlier invalid line's id is "duplicate" (not sent), held in memory or looked up, on resume."""
    monkeypatch.setattr(lookups_module, "_PROBLEM_IDS_IN_MEMORY", in_memory)
    bad = InputProblem(line=1, index=0, custom_id="a", field="prompt", message="'prompt' must be a non-empty string")
    later = make_item(1, custom_id="a")
    dup = InputProblem.duplicate_of(later)
    unrelated = make_item(2, custom_id="b")
    with open_store(tmp_path) as store:
        assert store.record_problem(bad) == "new"
        assert store.admit(later) == "duplicate"
        assert store.record_problem(dup) == "new"
        assert store.admit(unrelated) == "new"
    with open_store(tmp_path) as store:
        assert store.record_problem(bad) == "known"
        assert store.admit(later) == "duplicate"
        assert store.record_problem(dup) == "known"
        assert store.admit(unrelated) == "pending"
        assert store.counts() == StoreCounts(total=3, pending=1, done=0, failed=0, invalid=1, duplicate=1)


def test_bad_line_after_the_item_keeps_the_item(tmp_path: Path) -> None:
    """A bad line after a valid line with the same id is a duplicate: the item keeps the id's only output line."""
    item = make_item(0, custom_id="a")
    bad = InputProblem(line=2, index=1, custom_id="a", field="prompt", message="'prompt' must be a non-empty string")
    with open_store(tmp_path) as store:
        assert store.admit(item) == "new"
        assert store.record_problem(bad) == "new"
        assert store.record_result(ok(item))
    with open_store(tmp_path) as store:
        assert store.admit(item) == "done"
        assert store.record_problem(bad) == "known"
        assert [json.loads(x)["result"]["type"] for x in store.output.lines("input")] == ["succeeded"]
        assert store.counts().duplicate == 1


def test_store_of_another_format_is_refused_until_restart(tmp_path: Path) -> None:
    """A store written in another format version is a mismatch (named as such) that only restart clears."""
    with open_store(tmp_path) as store:
        store.admit(make_item(0))
    conn = sqlite3.connect(tmp_path / "job.db")
    conn.execute("UPDATE meta SET value = '0' WHERE key = 'schema'")
    conn.commit()
    conn.close()
    with pytest.raises(JobMismatchError, match="format '0'"):
        open_store(tmp_path)
    with open_store(tmp_path, restart=True) as store:
        assert store.admit(make_item(0)) == "new"


@pytest.mark.parametrize("block", [3, 2048])
def test_resume_read_ahead_matches_lookups(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, block: int) -> None:
    """Resuming in input order (rows read ahead in blocks) gives the same states as one id lookup per line."""
    monkeypatch.setattr(lookups_module, "_BLOCK", block)
    items = [make_item(i) for i in range(10)]
    bad = InputProblem(line=12, index=11, custom_id=None, field=None, message="not valid JSON")
    with open_store(tmp_path) as store:
        for it in items:
            store.admit(it)
        store.admit(make_item(10, custom_id="id-3"))  # a duplicate line
        store.record_problem(bad)
        for i in (0, 2, 5, 9):
            store.record_result(ok(items[i]))
        store.record_result(failed(items[7]))
    resumed = [*items[:4], make_item(4, prompt="edited"), *items[5:], make_item(10, custom_id="id-3")]
    answers = []
    for read_ahead in (True, False):
        with open_store(tmp_path) as store:
            store._ahead._on = read_ahead
            answers.append([store.admit(it) for it in resumed[:4]] + [store.admit(it) for it in resumed[5:]])
            assert (store._ahead._end > 0) == read_ahead  # the fast path was really taken (or really not)
            answers.append([store.admit(resumed[4])])  # out of order: read-ahead switches itself off
    assert answers[0] == answers[2]
    expected = ["done", "pending", "done", "pending", "done", "pending", "failed", "pending", "done", "duplicate"]
    assert answers[0] == expected
    assert answers[1] == answers[3] == ["changed"]


def test_read_ahead_sees_reset_failed(tmp_path: Path) -> None:
    """Items reset by reset_failed after rows were read ahead are admitted as pending, not failed."""
    items = [make_item(i) for i in range(6)]
    with open_store(tmp_path) as store:
        for it in items:
            store.admit(it)
        for it in items:
            store.record_result(failed(it))
    with open_store(tmp_path) as store:
        assert store.admit(items[0]) == "failed"
        assert store.reset_failed() == 6
        assert [store.admit(it) for it in items[1:]] == ["pending"] * 5


def test_unpriced_answers_and_1h_cache_writes_are_stored(tmp_path: Path) -> None:
    """An answer with no price is stored as unpriced (not as free); the 1h part of cache writes has its column."""
    a, b = make_item(0), make_item(1)
    usage = Usage(input_tokens=5, cache_creation_input_tokens=700, cache_creation_1h_input_tokens=400)
    with open_store(tmp_path) as store:
        store.admit(a)
        store.admit(b)
        store.record_result(replace(ok(a, cost=0.5), usage=usage))
        store.record_result(replace(ok(b), cost=None))
        usage_total, cost, unpriced = store.totals()
    assert (usage_total.cache_creation_input_tokens, usage_total.cache_creation_1h_input_tokens) == (700, 400)
    assert (cost, unpriced) == (0.5, 1)


def test_a_format_2_store_is_upgraded_and_keeps_its_results(tmp_path: Path) -> None:
    """A store written before the 1h-write and unpriced columns existed opens, keeps its results and gains them."""
    items = [make_item(i) for i in range(3)]
    with open_store(tmp_path) as store:
        for it in items:
            store.admit(it)
        store.record_result(ok(items[0], cost=1.25))
    conn = sqlite3.connect(tmp_path / "job.db")
    _drop_batch_columns(conn)
    conn.execute("ALTER TABLE entries DROP COLUMN cache_creation_1h_input_tokens")
    conn.execute("ALTER TABLE entries DROP COLUMN unpriced")
    conn.execute("UPDATE meta SET value = '2' WHERE key = 'schema'")
    conn.commit()
    conn.close()
    with open_store(tmp_path) as store:
        assert [store.admit(it) for it in items] == ["done", "pending", "pending"]
        usage = Usage(input_tokens=1, cache_creation_input_tokens=9, cache_creation_1h_input_tokens=9)
        assert store.record_result(replace(ok(items[1]), usage=usage, cost=None))
        usage_total, cost, unpriced = store.totals()
        assert (usage_total.cache_creation_1h_input_tokens, cost, unpriced) == (9, 1.25, 1)
    conn = sqlite3.connect(tmp_path / "job.db")
    assert conn.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone() == ("5",)
    conn.close()


def _drop_batch_columns(conn: sqlite3.Connection) -> None:
    """Make a current store look like one of format 3 (before `sluicegate batch`)."""
    conn.execute("DROP INDEX entries_batch")
    conn.execute("ALTER TABLE entries DROP COLUMN batch")
    conn.execute("DROP TABLE batches")


def test_a_format_3_store_is_upgraded_and_can_record_batches(tmp_path: Path) -> None:
    """A `run` store from before the batches table opens, keeps its results, and can then record batches."""
    items = [make_item(i) for i in range(3)]
    with open_store(tmp_path) as store:
        for it in items:
            store.admit(it)
        store.record_result(ok(items[0], cost=0.5))
    conn = sqlite3.connect(tmp_path / "job.db")
    _drop_batch_columns(conn)
    conn.execute("UPDATE meta SET value = '3' WHERE key = 'schema'")
    conn.commit()
    conn.close()
    with open_store(tmp_path) as store:
        assert [store.admit(it) for it in items] == ["done", "pending", "pending"]
        ledger = BatchLedger.of(store)
        assert not ledger.in_batch(items[1].custom_id)
        ledger.record_batch("msgbatch_1", [items[1].custom_id, items[2].custom_id])
        assert ledger.in_batch(items[2].custom_id)
        assert ledger.open_batches() == ["msgbatch_1"]
        assert ledger.batch_items("msgbatch_1") == {items[1].custom_id: 1, items[2].custom_id: 2}
    conn = sqlite3.connect(tmp_path / "job.db")
    assert conn.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone() == ("5",)
    conn.close()
