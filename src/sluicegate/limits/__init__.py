"""Capacity: pure token buckets and the async limiter that gates every request."""

from .bucket import TokenBucket
from .limiter import Limiter, Limits, Permit

__all__ = ["Limiter", "Limits", "Permit", "TokenBucket"]
