"""The OpenAI Batch API as a batch job uses it: upload a JSONL file, create the batch, poll, read the output files.

Calls go through the Message Batches client's retry loop (`BatchClient`) with OpenAI's auth and error bodies.
Limits per batch: 50,000 requests and 200 MB of input file, one model per file. Results come from two files,
the output file (answers) and the error file (failed requests, and those a cancel or the 24 h window stopped);
each line is turned into the Message Batches results format, the job's output format, so `run` and `batch`
write the same lines whichever provider carried them.

An interrupted submit is recognised exactly: every batch carries the job's token and the intent's key in its
`metadata`, so a re-run's look through the account's list matches on them instead of on size and time.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from .._models import Usage
from ..providers.openai import OpenAIProvider, usage_from_openai
from .batch_api import BatchClient, BatchRejectedError, BatchStatus
from .batch_ledger import BatchIntent
from .batch_service import ClientBatches

__all__ = ["MAX_FILE_BYTES", "MAX_FILE_REQUESTS", "OpenAIBatchClient", "OpenAIBatchStatus", "OpenAIBatches"]

MAX_FILE_REQUESTS = 50_000
MAX_FILE_BYTES = 200_000_000  # "200 MB", read as 10**6 bytes: the smaller reading
ENDPOINT = "/v1/chat/completions"
_ENDED = frozenset({"completed", "failed", "expired", "cancelled"})


@dataclass(frozen=True, slots=True)
class OpenAIBatchStatus(BatchStatus):
    """A `batch` object: its counts mapped onto the Message Batches names, plus what only OpenAI has."""

    status: str = ""
    output_file_id: str | None = None
    error_file_id: str | None = None
    metadata: Mapping[str, str] = field(default_factory=dict)
    errors: tuple[str, ...] = ()  # why a `failed` batch failed validation, one text per error

    @classmethod
    def from_openai(cls, data: Any) -> OpenAIBatchStatus:
        if not isinstance(data, Mapping) or not isinstance(data.get("id"), str):
            raise TypeError("not a batch object")
        status = str(data.get("status") or "")
        counts = _mapping(data.get("request_counts"))
        total, done, failed = (int(counts.get(k) or 0) for k in ("total", "completed", "failed"))
        found = _mapping(data.get("errors")).get("data")
        listed: list[Any] = found if isinstance(found, list) else []
        metadata = _mapping(data.get("metadata"))
        created = data.get("created_at")
        return cls(
            id=data["id"],
            processing_status="ended" if status in _ENDED else status,
            request_counts={"processing": max(0, total - done - failed), "succeeded": done, "errored": failed},
            created_at=float(created) if isinstance(created, int | float) else None,
            status=status,
            output_file_id=data.get("output_file_id") or None,
            error_file_id=data.get("error_file_id") or None,
            metadata={str(k): str(v) for k, v in metadata.items()},
            errors=tuple(
                f"line {e.get('line')}: {e.get('code')}: {e.get('message')}" for e in listed if isinstance(e, Mapping)
            ),
        )


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


class OpenAIBatchClient(BatchClient):
    """HTTP calls of the Files and Batch APIs under one base URL (which includes /v1, as in the openai SDK)."""

    provider = OpenAIProvider()
    key_variable = "OPENAI_API_KEY"
    list_path = "/batches"
    after_param = "after"

    @staticmethod
    def parse_status(data: Any) -> BatchStatus:
        return OpenAIBatchStatus.from_openai(data)

    async def upload(self, data: bytes, filename: str) -> str:
        """Upload a batch input file; its id. Shielded from cancellation like a create."""
        files = {"file": (filename, data, "application/jsonl")}
        found = await self._call(
            "upload a batch file", "POST", self._base + "/files", files=files, data={"purpose": "batch"}, shield=True
        )
        if not isinstance(found, Mapping) or not isinstance(found.get("id"), str):
            raise BatchRejectedError("the file upload answered no file id", status=200, error_type=None)
        return str(found["id"])

    async def create_batch(self, file_id: str, metadata: Mapping[str, str]) -> OpenAIBatchStatus:
        body = {"input_file_id": file_id, "endpoint": ENDPOINT, "completion_window": "24h", "metadata": metadata}
        found = await self._call("create a batch", "POST", self._base + "/batches", json=body, shield=True)
        return OpenAIBatchStatus.from_openai(found)

    async def retrieve(self, batch_id: str) -> OpenAIBatchStatus:
        found = await self._call(f"poll batch {batch_id}", "GET", f"{self._base}/batches/{batch_id}")
        return OpenAIBatchStatus.from_openai(found)

    async def cancel(self, batch_id: str) -> OpenAIBatchStatus:
        found = await self._call(f"cancel batch {batch_id}", "POST", f"{self._base}/batches/{batch_id}/cancel")
        return OpenAIBatchStatus.from_openai(found)

    def file_lines(self, batch_id: str, file_id: str) -> AsyncIterator[dict[str, Any]]:
        """The JSON lines of a file, streamed and retried by the results reader (a line may come twice)."""
        url = f"{self._base}/files/{file_id}/content"
        return self.results(BatchStatus(id=batch_id, processing_status="ended", results_url=url))


class OpenAIBatches(ClientBatches):
    """The OpenAI Batch API behind the batch runner's interface (`BatchService`)."""

    provider: Literal["anthropic", "openai"] = "openai"
    max_requests = MAX_FILE_REQUESTS
    max_bytes = MAX_FILE_BYTES
    envelope = 0  # the file is the request lines, nothing else

    _client: OpenAIBatchClient

    def __init__(self, client: OpenAIBatchClient, job_token: str) -> None:
        super().__init__(client)
        self._token = job_token  # names this job in each batch's metadata

    def encode(self, custom_id: str, params: Mapping[str, Any]) -> bytes:
        body = OpenAIProvider().body(params, stream=False)
        return self.compact({"custom_id": custom_id, "method": "POST", "url": ENDPOINT, "body": body})

    def group(self, params: Mapping[str, Any]) -> str:
        return str(params.get("model") or "")  # one model per input file

    async def submit(self, lines: list[bytes], intent: int) -> BatchStatus:
        file_id = await self._client.upload(b"".join(line + b"\n" for line in lines), f"sluicegate-{intent}.jsonl")
        metadata = {"sluicegate_job": self._token, "sluicegate_intent": str(intent)}
        return await self._client.create_batch(file_id, metadata)

    def candidates(self, intent: BatchIntent, listed: Iterable[BatchStatus], known: set[str]) -> list[BatchStatus]:
        """The listed batch whose metadata names this job and this intent (at most one is ever created)."""
        return [
            batch
            for batch in listed
            if isinstance(batch, OpenAIBatchStatus)
            and batch.id not in known
            and batch.metadata.get("sluicegate_job") == self._token
            and batch.metadata.get("sluicegate_intent") == str(intent.seq)
        ]

    async def results(self, batch: BatchStatus) -> AsyncIterator[dict[str, Any]]:
        """The output file's then the error file's lines as Message Batches result lines. A batch that failed
        validation has none: its reason is raised as a refusal, which the runner records on each of its items."""
        found = batch if isinstance(batch, OpenAIBatchStatus) else await self._client.retrieve(batch.id)
        if found.status == "failed":
            reason = "; ".join(found.errors[:3]) or "no reason given"
            raise BatchRejectedError(f"batch {found.id} failed validation: {reason}", status=400, error_type="failed")
        for file_id in (found.output_file_id, found.error_file_id):
            if file_id is None:
                continue
            async for line in self._client.file_lines(found.id, file_id):
                yield {"custom_id": line.get("custom_id"), "result": result_of(line)}

    def usage(self, message: Mapping[str, Any]) -> Usage:
        return usage_from_openai(message.get("usage"))


def result_of(line: Mapping[str, Any]) -> dict[str, Any]:
    """One output- or error-file line as a Message Batches `result` object (pure)."""
    response = line.get("response")
    error = line.get("error")
    if isinstance(response, Mapping):
        body = response.get("body")
        if response.get("status_code") == 200 and isinstance(body, Mapping):
            return {"type": "succeeded", "message": dict(body)}
        found = body.get("error") if isinstance(body, Mapping) else None
        detail: Mapping[str, Any] = found if isinstance(found, Mapping) else {}
        inner = {
            "type": str(detail.get("type") or "api_error"),
            "message": str(detail.get("message") or f"HTTP {response.get('status_code')}"),
        }
        out: dict[str, Any] = {"type": "error", "error": inner}
        if response.get("request_id"):
            out["request_id"] = str(response["request_id"])
        return {"type": "errored", "error": out}
    code = error.get("code") if isinstance(error, Mapping) else None
    if code == "batch_expired":
        return {"type": "expired"}
    if code == "batch_cancelled":
        return {"type": "canceled"}
    message = error.get("message") if isinstance(error, Mapping) else None
    return {
        "type": "errored",
        "error": {"type": "error", "error": {"type": str(code or "api_error"), "message": str(message or "failed")}},
    }
