"""The report of a job store without a timeline (a batch job, an older version): totals and errors, no guess."""

from __future__ import annotations

from pathlib import Path

from sluicegate._models import ErrorInfo, RequestItem, Result, Usage
from sluicegate.jobs import JobStore
from sluicegate.report import write_report


def test_a_store_without_a_timeline_still_gets_a_page_and_a_picture(tmp_path: Path) -> None:
    """The page holds every chart, the store's totals and the errors with their lines, and says no timeline was kept."""
    store = JobStore.open(tmp_path / "out.jsonl.sluicegate.db", settings={"provider": "anthropic", "model": "m"})
    params = {"model": "m", "max_tokens": 8, "messages": [{"role": "user", "content": "p"}]}
    for i in range(3):
        store.admit(RequestItem(index=i, custom_id=f"id-{i}", params=params, line=i + 1))
    message = {"id": "msg", "type": "message", "content": [{"type": "text", "text": "hi"}]}
    store.record_result(Result(0, "id-0", message=message, usage=Usage(input_tokens=7, output_tokens=3), cost=0.25))
    store.record_result(Result(1, "id-1", message=message, usage=Usage(input_tokens=7, output_tokens=3), cost=0.25))
    error = ErrorInfo(
        kind="overloaded", message="Overloaded <again>", status=529, error_type="overloaded_error", line=3
    )
    store.record_result(Result(2, "id-2", error=error, attempts=4))
    store.close()
    files = write_report(tmp_path / "out.jsonl.sluicegate.db", tmp_path / "r.html", tmp_path / "r.png")
    page = files.html.read_text()
    assert files.diagnosis.paragraph.startswith("No timeline was recorded")
    for fig_id in ("throughput", "in-flight", "failures", "latency", "tokens-cost", "errors"):
        assert f'id="chart-{fig_id}"' in page
    assert "$0.5000" in page
    assert "overloaded_error" in page
    assert "Overloaded &lt;again&gt;" in page  # API text is escaped, never markup
    assert files.png.read_bytes().startswith(b"\x89PNG")
