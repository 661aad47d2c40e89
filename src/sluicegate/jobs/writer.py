"""The output JSONL file, derived from the job store's output log: never a partial or a duplicate line."""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO

from .._exceptions import ConfigError
from .output_log import OutputLog, OutputOrder

__all__ = ["OutputWriter"]

_CHUNK = 1 << 20


class OutputWriter:
    """Appends committed result lines to the output file in the job's order, and repairs the file on resume.

    The store is the truth; the file is a view of it. A result is written only after its commit, so the file can
    lag the store (a kill before the write: the lines are appended on resume) but never lead it, except after a
    power loss, which `open` detects and repairs by rewriting the file from the store.
    """

    def __init__(
        self,
        path: Path,
        log: OutputLog,
        order: OutputOrder,
        *,
        fsync_interval: float,
        clock: Callable[[], float],
    ) -> None:
        self._path = path
        self._log = log
        self._order = order
        self._fsync_interval = fsync_interval
        self._clock = clock
        self._file: BinaryIO | None = None
        self._last_seq = -1  # completion order: seq of the last line written
        self._next_idx = 0  # input order: index of the next line to write
        self._written = 0
        self._last_sync = clock()

    @classmethod
    def open(
        cls,
        path: str | os.PathLike[str],
        log: OutputLog,
        order: OutputOrder,
        *,
        fsync_interval: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> OutputWriter:
        """Open the output for appending, after making it a prefix of what the store says it should hold.

        A partial last line (a kill mid-write) is cut. If the file has more lines than the store accounts for, is
        not this job's output, or predates a reset of failed items, it is rewritten from the store atomically.
        """
        # The real file, not a symlink to it: a rewrite renames over the path, which would replace the link itself.
        writer = cls(Path(path).resolve(), log, order, fsync_interval=fsync_interval, clock=clock)
        try:
            writer._resume()
        except OSError as exc:  # a folder, no permission, a read-only disk: a usage problem, not a crash
            raise ConfigError(f"cannot write the output file {path}: {exc.strerror or exc}") from exc
        return writer

    @property
    def lines_written(self) -> int:
        """Lines in the file (complete ones), including those from earlier runs."""
        return self._written

    def _resume(self) -> None:
        mark = f"{self._log.mark()}:{self._order}"
        first = next(self._log.lines(self._order, 0), None)
        scan = _scan(self._path, None if first is None else first.encode())
        if scan.end < scan.size:
            with self._path.open("r+b") as f:
                f.truncate(scan.end)
                f.flush()
                os.fsync(f.fileno())
        committed = self._log.count(self._order)
        if self._log.written_mark() != mark or scan.lines > committed or not self._matches(scan):
            self.rewrite()
            return
        self._written = scan.lines
        if self._order == "completion":
            self._last_seq = self._log.seq_at(scan.lines - 1)
        else:
            self._next_idx = self._log.input_index_after(scan.lines)
        self._file = self._path.open("ab")

    def _matches(self, scan: _Scan) -> bool:
        """The first and last lines agree with the store (guards against another job's file under this name)."""
        if scan.lines == 0:
            return True
        if not scan.first_matches:
            return False
        last = next(self._log.lines(self._order, scan.lines - 1), None)
        if last is None:
            return False
        expected = last.encode()
        if scan.end - 1 - scan.last_start != len(expected):  # checked first: a foreign last line is never read whole
            return False
        with self._path.open("rb") as f:
            f.seek(scan.last_start)
            return f.read(len(expected)) == expected

    def write_committed(self) -> int:
        """Append every committed line not yet in the file (call right after the store's commit); returns how many."""
        out = self._require_open()
        count = 0
        for key, text in self._rows():
            out.write(text.encode("utf-8") + b"\n")
            count += 1
            if self._order == "completion":
                self._last_seq = key
            else:
                self._next_idx = key + 1
        self._written += count
        if count:
            # One write per commit batch puts the lines in the OS (readers of the file see them, a killed process
            # loses none); fsync only every fsync_interval, as it guards against a power loss alone, which `open`
            # repairs from the store anyway. An fsync per commit would cost milliseconds each for little.
            out.flush()
            if self._clock() - self._last_sync >= self._fsync_interval:
                self.flush()
        return count

    def _rows(self) -> Iterator[tuple[int, str]]:
        if self._order == "completion":
            return self._log.completion_rows(self._last_seq)
        return self._log.input_rows(self._next_idx)

    def flush(self) -> None:
        """Push buffered lines to the file and fsync it."""
        out = self._require_open()
        out.flush()
        os.fsync(out.fileno())
        self._last_sync = self._clock()

    def rewrite(self) -> None:
        """Regenerate the whole file from the store, atomically (temp file, fsync, rename): one line per finished id."""
        if self._file is not None:
            self._file.close()
            self._file = None
        tmp = self._path.with_name(self._path.name + ".partial")
        self._last_seq, self._next_idx, self._written = -1, 0, 0
        with tmp.open("wb") as f:
            for key, text in self._rows():
                f.write(text.encode("utf-8") + b"\n")
                self._written += 1
                if self._order == "completion":
                    self._last_seq = key
                else:
                    self._next_idx = key + 1
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self._path)
        _fsync_dir(self._path.parent)
        self._file = self._path.open("ab")
        self._last_sync = self._clock()
        self._log.set_written_mark(f"{self._log.mark()}:{self._order}")

    @property
    def path(self) -> Path:
        """The output file (the real one, symlinks resolved)."""
        return self._path

    @property
    def closed(self) -> bool:
        """True once `close` ran (or a rewrite failed midway)."""
        return self._file is None

    def close(self) -> None:
        """Flush, fsync and close the file."""
        if self._file is None:
            return
        try:
            self.flush()
        finally:
            self._file.close()
            self._file = None

    def __enter__(self) -> OutputWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _require_open(self) -> BinaryIO:
        if self._file is None:
            raise ValueError("the output writer is closed")
        return self._file


class _Scan:
    """What is in an existing output file: size, complete lines, where the last one starts and ends, and whether
    the first line is the expected one."""

    __slots__ = ("end", "first_matches", "last_start", "lines", "size")

    def __init__(self) -> None:
        self.size = 0
        self.lines = 0
        self.end = 0  # offset just past the last newline
        self.last_start = 0  # offset of the last complete line
        self.first_matches = False


def _scan(path: Path, expected_first: bytes | None) -> _Scan:
    """Count the complete lines in 1 MiB blocks, comparing the first line on the way (memory stays one block)."""
    scan = _Scan()
    try:
        f = path.open("rb")
    except FileNotFoundError:
        return scan
    with f:
        offset = 0
        matched = 0  # bytes of the first line equal to the expected one so far
        comparing = True
        while block := f.read(_CHUNK):
            if comparing:
                cut = block.find(b"\n")
                part = block if cut < 0 else block[:cut]
                if expected_first is None or expected_first[matched : matched + len(part)] != part:
                    comparing = False
                else:
                    matched += len(part)
                    if cut >= 0:
                        scan.first_matches = matched == len(expected_first)
                        comparing = False
            newlines = block.count(b"\n")
            if newlines:
                i = block.rfind(b"\n")
                j = block.rfind(b"\n", 0, i)
                scan.last_start = offset + j + 1 if j >= 0 else scan.end
                scan.end = offset + i + 1
                scan.lines += newlines
            offset += len(block)
        scan.size = offset
    return scan


def _fsync_dir(directory: Path) -> None:
    # Makes the rename itself durable; directories cannot be opened this way on Windows.
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
