"""The `sluicegate` command: a click group whose subcommands live in their own modules."""

from __future__ import annotations

import importlib

import click

__all__ = ["main"]

# name -> "module:attribute"; imported only when the subcommand runs, so `sluicegate --help` stays fast.
_COMMANDS = {
    "run": "sluicegate.cli.run:run",
    "emulate": "sluicegate.cli.emulate:emulate",
    "demo": "sluicegate.cli.demo:demo",
    "estimate": "sluicegate.cli.estimate:estimate",
    "batch": "sluicegate.cli.batch:batch",
    "plan": "sluicegate.cli.plan:plan",
    "serve": "sluicegate.cli.serve:serve",
    "report": "sluicegate.cli.report:report",
}


class _LazyGroup(click.Group):
    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """Each command's first sentence in full: click would cut it to the terminal's width with '...'."""
        rows = []
        for name in self.list_commands(ctx):
            command = self.get_command(ctx, name)
            if command is not None and not command.hidden:
                rows.append((name, command.get_short_help_str(limit=10_000)))
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(_COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = _COMMANDS.get(cmd_name)
        if target is None:
            return None
        module_name, attr = target.split(":")
        command = getattr(importlib.import_module(module_name), attr)
        assert isinstance(command, click.Command)
        return command


@click.group(cls=_LazyGroup)
@click.version_option(package_name="sluicegate")
def main() -> None:
    """Run large numbers of LLM API requests at the full speed your rate limits allow."""
