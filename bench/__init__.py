"""Benchmarks: each runs as ``python -m bench.NAME`` from the repo root and prints one JSON line last."""
