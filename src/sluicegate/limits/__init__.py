"""Capacity: pure token buckets and the async limiter that gates every request."""
