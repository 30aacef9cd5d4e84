"""Benchmarks: failover time (failover.py) and the comparison with Celery and taskiq (compare.py)."""
