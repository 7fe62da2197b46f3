"""Benchmarks behind ``gatepass bench``."""
