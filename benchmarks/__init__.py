"""Benchmarks: measure, never assert (see docs/benchmarks.md)."""
