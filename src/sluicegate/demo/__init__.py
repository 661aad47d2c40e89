"""`sluicegate demo` and the naive peers it (and the benchmark) compares sluicegate with."""

from sluicegate.demo.progress import DemoProgress, SystemProgress
from sluicegate.demo.run import SYSTEMS, DemoSettings, Row, render_table, run_demo

__all__ = ["SYSTEMS", "DemoProgress", "DemoSettings", "Row", "SystemProgress", "render_table", "run_demo"]
