"""The sluicegate benchmark: the same workloads through sluicegate and the tools users would pick instead."""
