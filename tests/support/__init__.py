"""Helpers for tests: worker processes, a cluster of them, waiting on conditions."""
