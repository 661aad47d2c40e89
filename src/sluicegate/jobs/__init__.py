"""Durable jobs over JSONL files: the streaming reader, the SQLite job store and the output writer."""

from .output_log import OutputOrder, result_line
from .reader import Defaults, InputProblem, OversizeLine, Provider, iter_lines, params_fingerprint, read_requests
from .store import AdmitState, JobBusyError, JobMismatchError, JobStore, ProblemState, StoreCounts
from .writer import OutputWriter

__all__ = [
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
