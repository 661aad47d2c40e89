"""A local emulator of the Anthropic and OpenAI APIs with real rate limits, SSE, batches and faults."""

from sluicegate.emulator.config import EmulatorConfig, FaultSpec
from sluicegate.emulator.server import RunningEmulator, run_emulator

__all__ = ["EmulatorConfig", "FaultSpec", "RunningEmulator", "run_emulator"]
