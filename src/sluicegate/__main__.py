"""`python -m sluicegate` is the `sluicegate` command."""

from sluicegate.cli import main

main()
