"""Usable from any thread: appctl registry, rate-limited logging, coverage
counters."""
