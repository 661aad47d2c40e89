"""The `sluicegate emulate` command's fault parsing."""

from __future__ import annotations

import click
import pytest

from sluicegate.cli.emulate import _parse_fault


def test_parse_fault_forms() -> None:
    """KIND:PROB gives a probability fault, KIND@A-B a scheduled window, unknown kinds are rejected."""
    assert _parse_fault("overloaded:0.25").probability == 0.25
    window = _parse_fault("hang@10-20")
    assert (window.kind, window.start, window.end) == ("hang", 10.0, 20.0)
    with pytest.raises(click.BadParameter):
        _parse_fault("nope:1")
