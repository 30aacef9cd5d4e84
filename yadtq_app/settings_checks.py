"""Validation of :class:`~yadtq_app.settings.Settings`: :func:`check` raises on the first bad value.

Each error names the setting's variable and field (``YADTQ_PARTITIONS (partitions) must be
at least 1``), read from the field's declaration.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

from .errors import ConfigurationError

if TYPE_CHECKING:
    from .settings import Settings

__all__ = ["check"]

PROFILES = ("auto", "embedded", "kafka")
#: Room in a status row for what is not arguments or result: the error, the history of
#: attempts (both bounded) and the other fields (bytes).
ROW_HEADROOM = 64 * 1024
#: Values of ``YADTQ_SECURITY_PROTOCOL`` (Kafka's ``security.protocol``).
SECURITY_PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
#: SASL mechanisms that take a username and password (what ``YADTQ_SASL_MECHANISM`` accepts).
SASL_MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")


def _bad(s: Settings, name: str, why: str) -> ConfigurationError:
    """The error for field ``name``: ``<VARIABLE> (<name>) <why>``."""
    env = next(f.metadata["yadtq"].env for f in dataclasses.fields(s) if f.name == name)
    return ConfigurationError(f"{env} ({name}) {why}")


def check(s: Settings) -> None:
    """Raise :class:`ConfigurationError` for the first invalid or contradictory setting."""
    _check_numbers(s)
    _check_limits(s)
    _check_broker(s)
    _check_security(s)


def _check_numbers(s: Settings) -> None:
    """Counts, durations and sizes that must be in range."""
    if s.broker_profile not in PROFILES:
        raise _bad(s, "broker_profile", f"must be one of {', '.join(PROFILES)}, not {s.broker_profile!r}")
    for name in ("partitions", "replication_factor", "concurrency"):
        if getattr(s, name) < 1:
            raise _bad(s, name, "must be at least 1")
    for name in ("default_timeout", "heartbeat_interval", "broker_lost_after"):
        if getattr(s, name) <= 0:
            raise _bad(s, name, "must be positive")
    if s.default_max_retries < 0:
        raise _bad(s, "default_max_retries", "must not be negative")
    if s.retry_backoff < 0 or s.retry_backoff_max < 0:
        raise _bad(s, "retry_backoff", "and YADTQ_RETRY_BACKOFF_MAX must not be negative")
    if not 0 <= s.retry_jitter <= 10:
        raise _bad(s, "retry_jitter", "must be between 0 and 10 (a fraction of the backoff)")
    if s.processes < 1:
        raise _bad(s, "processes", "must be at least 1")
    _check_buffers(s)


def _check_buffers(s: Settings) -> None:
    """RocksDB's memory and the consumer's fetch waits."""
    for name in ("rocksdb_write_buffer_mb", "rocksdb_block_cache_mb"):
        if getattr(s, name) <= 0:
            raise _bad(s, name, "must be positive")
    for name in ("fetch_max_wait_ms", "busy_fetch_max_wait_ms"):
        if (getattr(s, name) or 0) < 0:
            raise _bad(s, name, "must not be negative")


def _check_limits(s: Settings) -> None:
    """Message and result sizes, HTTP limits and timeouts."""
    if s.max_message_bytes < 1 or s.max_result_bytes < 1:
        raise _bad(s, "max_message_bytes", "and YADTQ_MAX_RESULT_BYTES must be positive")
    if s.max_message_bytes + s.max_result_bytes + ROW_HEADROOM > s.record_limit:
        raise _bad(s, "max_message_bytes", f"plus YADTQ_MAX_RESULT_BYTES must stay {ROW_HEADROOM} bytes under the "
                   f"record limit ({s.record_limit} bytes): a task's status row holds both, its error "
                   "and its history")
    if s.submit_timeout <= 0:
        raise _bad(s, "submit_timeout", "must be positive")
    if s.result_ttl < 0:
        raise _bad(s, "result_ttl", "must not be negative (0 keeps results forever)")
    if s.queued_hold < 0:
        raise _bad(s, "queued_hold", "must not be negative (0 writes queued statuses at once)")
    for name in ("http_idle_timeout", "http_read_timeout"):
        if not getattr(s, name) > 0:
            raise _bad(s, name, "must be positive")
    if s.max_forwarded_long_polls < 1:
        raise _bad(s, "max_forwarded_long_polls", "must be at least 1")
    if not 100 <= s.gc_threshold <= 1_000_000:
        raise _bad(s, "gc_threshold", "must be from 100 to 1000000")
    if not 1 <= s.max_nesting <= 500:
        raise _bad(s, "max_nesting", "must be from 1 to 500 (JSON decoding recurses once per level)")
    if not 0 < s.web_port < 65536:
        raise _bad(s, "web_port", "must be a TCP port (1-65535)")


def _check_broker(s: Settings) -> None:
    """The broker URL and the topics' replication."""
    if not s.broker_url.startswith("kafka://"):
        raise _bad(s, "broker_url", f"must start with kafka://, got {s.broker_url!r}")
    try:
        if not s.broker_hosts:
            raise ValueError("no host")
    except ValueError as exc:
        raise _bad(s, "broker_url", f"is not a list of host:port ({exc}); write IPv6 hosts as [::1]:9092") from None
    if s.min_insync_replicas is not None and not 1 <= s.min_insync_replicas <= s.replication_factor:
        raise _bad(s, "min_insync_replicas", f"must be between 1 and YADTQ_REPLICATION_FACTOR "
                   f"({s.replication_factor}): acks=all writes would always fail")


def _check_security(s: Settings) -> None:
    """Reject security settings that contradict each other (files are read later)."""
    protocol = s.security_protocol
    if protocol not in SECURITY_PROTOCOLS:
        raise _bad(s, "security_protocol", f"must be one of {', '.join(SECURITY_PROTOCOLS)}, not {protocol!r}")
    if protocol.startswith("SASL_"):
        if s.sasl_mechanism not in SASL_MECHANISMS:
            raise _bad(s, "sasl_mechanism", f"must be one of {', '.join(SASL_MECHANISMS)}, "
                       f"not {s.sasl_mechanism!r}")
        for name in ("sasl_username", "sasl_password"):
            if not getattr(s, name):
                raise _bad(s, name, f"is required with YADTQ_SECURITY_PROTOCOL={protocol}")
    else:
        for name in ("sasl_username", "sasl_password"):
            if getattr(s, name):
                raise _bad(s, name, f"is set, but YADTQ_SECURITY_PROTOCOL={protocol} does not use SASL "
                           "(use SASL_SSL or SASL_PLAINTEXT)")
    if protocol not in ("SSL", "SASL_SSL"):
        for name in ("ssl_cafile", "ssl_certfile", "ssl_keyfile"):
            if getattr(s, name):
                raise _bad(s, name, f"is set, but YADTQ_SECURITY_PROTOCOL={protocol} does not use TLS "
                           "(use SSL or SASL_SSL)")
    if s.ssl_keyfile and not s.ssl_certfile:
        raise _bad(s, "ssl_keyfile", "needs YADTQ_SSL_CERTFILE (the client certificate it belongs to)")
