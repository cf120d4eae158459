"""Benchmark suites of sbi-astro (``python -m benchmarks [NAME ...] [--quick]``)."""
