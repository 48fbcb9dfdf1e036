"""Benchmarks for orgservice (run with `make bench`)."""
