"""The emulator's OpenAI Files API: upload (multipart), retrieve, list, content and delete, per API key.

Enough of the Files API for the Batch API: `POST /v1/files` with `purpose` and `file` form fields (the openai
SDK's `client.files.create`), `GET /v1/files/{id}` (the File object), `GET /v1/files/{id}/content` (the bytes),
`GET /v1/files` and `DELETE /v1/files/{id}`. Files live in memory for the emulator's lifetime. A batch input
file above 200 MB is refused at upload (the Batch API's documented limit; where the real API enforces it is
UNCONFIRMED). Files are visible only to the key that made them (the real scope is the project).
"""

from __future__ import annotations

import random
import string
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

if TYPE_CHECKING:  # state.py imports this module: the type only, not a runtime import
    from sluicegate.emulator.state import EmulatorState

__all__ = ["MAX_BATCH_FILE_BYTES", "FileStore", "StoredFile", "file_routes", "openai_error", "parse_multipart"]

MAX_BATCH_FILE_BYTES = 200 * 1024 * 1024  # "up to 200 MB" per batch input file
MAX_FILE_BYTES = 512 * 1024 * 1024
_PURPOSES = frozenset({"assistants", "batch", "fine-tune", "vision", "user_data", "evals"})
_ALNUM = string.ascii_letters + string.digits

Handler = Callable[[Request], Awaitable[Response]]


@dataclass(slots=True)
class StoredFile:
    """One uploaded or generated file."""

    id: str
    filename: str
    purpose: str
    data: bytes
    created_at: int  # epoch seconds
    scope: str  # the key that owns it

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "file",
            "bytes": len(self.data),
            "created_at": self.created_at,
            "filename": self.filename,
            "purpose": self.purpose,
            "status": "processed",
            "expires_at": None,
            "status_details": None,
        }


class FileStore:
    """Every file of one emulator, in creation order."""

    def __init__(self, seed: int = 0) -> None:
        self._rng = random.Random(seed)
        self._files: dict[str, StoredFile] = {}

    def add(self, filename: str, purpose: str, data: bytes, scope: str) -> StoredFile:
        file_id = "file-" + "".join(self._rng.choice(_ALNUM) for _ in range(22))
        stored = StoredFile(file_id, filename, purpose, data, int(time.time()), scope)
        self._files[file_id] = stored
        return stored

    def get(self, file_id: str, scope: str) -> StoredFile | None:
        found = self._files.get(file_id)
        return found if found is not None and found.scope == scope else None

    def delete(self, file_id: str) -> None:
        self._files.pop(file_id, None)

    def listed(self, scope: str) -> list[StoredFile]:
        return [f for f in self._files.values() if f.scope == scope]

    def clear(self) -> None:
        self._files.clear()


def openai_error(
    status: int, message: str, type: str = "invalid_request_error", param: str | None = None, code: str | None = None
) -> JSONResponse:
    """The OpenAI error body, the same for every status."""
    return JSONResponse({"error": {"message": message, "type": type, "param": param, "code": code}}, status_code=status)


def parse_multipart(content_type: str, body: bytes) -> dict[str, tuple[str | None, bytes]]:
    """The fields of a multipart/form-data body: name -> (filename or None, bytes). Raises ValueError if it is not
    one. A small parser of what HTTP clients send (RFC 7578), so the emulator needs no extra package."""
    params = dict(
        part.strip().split("=", 1) for part in content_type.split(";")[1:] if "=" in part
    )  # e.g. boundary=abc
    boundary = params.get("boundary", "").strip('"')
    if not content_type.lower().startswith("multipart/form-data") or not boundary:
        raise ValueError("not a multipart/form-data body")
    fields: dict[str, tuple[str | None, bytes]] = {}
    for part in body.split(b"--" + boundary.encode())[1:]:
        if part.startswith(b"--"):
            break  # the closing delimiter
        head, sep, data = part.partition(b"\r\n\r\n")
        if not sep:
            raise ValueError("a multipart part without headers")
        disposition = ""
        for line in head.decode("utf-8", "replace").split("\r\n"):
            if line.lower().startswith("content-disposition:"):
                disposition = line.split(":", 1)[1]
        attrs = {}
        for item in disposition.split(";")[1:]:
            if "=" in item:
                key, value = item.strip().split("=", 1)
                attrs[key.lower()] = value.strip('"')
        if "name" in attrs:
            fields[attrs["name"]] = (attrs.get("filename"), data.removesuffix(b"\r\n"))
    return fields


def _api_key(request: Request) -> str:
    auth = request.headers.get("authorization", "")
    return auth[7:].strip() if auth.lower().startswith("bearer ") else ""


def file_routes(state: EmulatorState) -> list[Route]:
    """The Files routes of one emulator, over `state.files`."""
    store = state.files

    def not_found(file_id: str) -> JSONResponse:
        return openai_error(404, f"No such File object: {file_id}", param="id")

    async def create(request: Request) -> Response:
        try:
            fields = parse_multipart(request.headers.get("content-type", ""), await request.body())
        except ValueError as exc:
            return openai_error(400, f"Could not parse the upload: {exc}.")
        purpose = fields.get("purpose", (None, b""))[1].decode("utf-8", "replace")
        if purpose not in _PURPOSES:
            return openai_error(400, f"'{purpose}' is not one of {sorted(_PURPOSES)} - 'purpose'", param="purpose")
        if "file" not in fields:
            return openai_error(400, "Missing required parameter: 'file'.", param="file")
        filename, data = fields["file"]
        limit = MAX_BATCH_FILE_BYTES if purpose == "batch" else MAX_FILE_BYTES
        if len(data) > limit:
            return openai_error(
                400, f"File is too large: {len(data)} bytes; the limit for purpose '{purpose}' is {limit} bytes."
            )
        return JSONResponse(store.add(filename or "upload", purpose, data, request.state.key).as_json())

    async def retrieve(request: Request) -> Response:
        file_id = request.path_params["file_id"]
        found = store.get(file_id, request.state.key)
        return not_found(file_id) if found is None else JSONResponse(found.as_json())

    async def content(request: Request) -> Response:
        file_id = request.path_params["file_id"]
        found = store.get(file_id, request.state.key)
        if found is None:
            return not_found(file_id)
        return Response(found.data, media_type="application/octet-stream")

    async def delete(request: Request) -> Response:
        file_id = request.path_params["file_id"]
        if store.get(file_id, request.state.key) is None:
            return not_found(file_id)
        store.delete(file_id)
        return JSONResponse({"id": file_id, "object": "file", "deleted": True})

    async def listed(request: Request) -> Response:
        data = [f.as_json() for f in store.listed(request.state.key)]
        return JSONResponse({"object": "list", "data": data, "has_more": False})

    return [
        keyed(state, "POST", "/v1/files", create),
        keyed(state, "GET", "/v1/files", listed),
        keyed(state, "GET", "/v1/files/{file_id}", retrieve),
        keyed(state, "DELETE", "/v1/files/{file_id}", delete),
        keyed(state, "GET", "/v1/files/{file_id}/content", content),
    ]


def keyed(state: EmulatorState, method: str, path: str, handler: Handler) -> Route:
    """`handler` behind OpenAI's key check (the key in `request.state.key`), counted in the stats."""
    endpoint = f"{method} {path}"
    invalid = state.config.invalid_keys

    async def wrapped(request: Request) -> Response:
        key = _api_key(request)
        if not key:
            response: Response = openai_error(401, "You didn't provide an API key.")
        elif key in invalid:
            response = openai_error(401, "Incorrect API key provided.", code="invalid_api_key")
        else:
            request.state.key = key
            response = await handler(request)
        state.stats.count(endpoint, response.status_code)
        return response

    return Route(path, wrapped, methods=[method])
