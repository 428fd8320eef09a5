"""Benchmarks of the running suite (`make bench`)."""
