"""Settings: one frozen value object, read from ``YADTQ_*`` environment variables.

This is the only module that reads the environment. Everything else receives a
:class:`Settings` instance explicitly, so tests build their own instead of patching
``os.environ``.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import socket
from dataclasses import dataclass, field
from typing import Callable, Mapping, Optional
from urllib.parse import urlsplit

from .errors import ConfigurationError

__all__ = ["Settings", "DEFAULT_BROKER_URL"]

DEFAULT_BROKER_URL = "kafka://127.0.0.1:9092"
PROFILES = ("auto", "embedded", "kafka")
#: The producer's largest request (Faust's default, set explicitly on the app) and the
#: room kept in it for a record's key, headers and batch framing (bytes).
PRODUCER_MAX_REQUEST_SIZE = 1_000_000
RECORD_OVERHEAD = 16 * 1024
#: Room in a status row for what is not arguments or result: the error, the history of
#: attempts (both bounded) and the other fields (bytes).
ROW_HEADROOM = 64 * 1024
#: Values of ``YADTQ_SECURITY_PROTOCOL`` (Kafka's ``security.protocol``).
SECURITY_PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
#: SASL mechanisms that take a username and password (what ``YADTQ_SASL_MECHANISM`` accepts).
SASL_MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")


def _default_worker_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


@dataclass(frozen=True)
class Settings:
    """Everything a yadtq process can be configured with.

    Each field maps to an environment variable: ``broker_url`` is ``YADTQ_BROKER_URL``
    and so on (see ``ENV`` below and the README's settings table).
    """

    broker_url: str = DEFAULT_BROKER_URL
    #: ``auto`` picks ``embedded`` when every broker host is a loopback address,
    #: ``kafka`` otherwise. See :mod:`yadtq_app.compat`.
    broker_profile: str = "auto"
    app_id: str = "yadtq"
    task_topic: str = "task_queue"
    partitions: int = 8
    replication_factor: int = 1
    #: ``min.insync.replicas`` of every topic yadtq creates on Kafka; ``None`` leaves the
    #: broker's default. With ``acks=all`` a write needs this many replicas in sync.
    min_insync_replicas: Optional[int] = None
    task_modules: tuple[str, ...] = ("yadtq_app.examples",)
    #: How many tasks one worker runs at the same time.
    concurrency: int = 8
    #: Time limit (seconds) for a task that does not set its own.
    default_timeout: float = 300.0
    #: Largest accepted task message (bytes of JSON). With the result limit and the
    #: bounded error fields it keeps a task's status row under :attr:`record_limit`.
    max_message_bytes: int = 512 * 1024
    #: How long ``POST /tasks`` waits for the brokers to confirm a submission (s) before
    #: it answers 503 (e.g. too few in-sync replicas for ``acks=all``).
    submit_timeout: float = 10.0
    #: Largest result a task may return (bytes of JSON); a larger one fails the task
    #: with ``ResultTooLarge``.
    max_result_bytes: int = 256 * 1024
    web_host: str = "127.0.0.1"
    web_port: int = 6066
    #: Levels of arrays/objects a task message or request body may nest, itself
    #: included (``{"args": [[1]]}`` is 3); deeper input is refused (``too-deep``).
    max_nesting: int = 32
    #: Seconds an HTTP connection may go without sending a complete request (idle
    #: between requests, or sending its headers) before the worker closes it.
    http_idle_timeout: float = 30.0
    #: Seconds a client may take to send a request body (else 408 and the connection closed).
    http_read_timeout: float = 30.0
    #: Long polls (``GET /tasks/{id}?wait=``) one worker forwards to others at once, on a
    #: connection pool of their own; more wait for a free connection.
    max_forwarded_long_polls: int = 1000
    #: Where this worker keeps its RocksDB tables; empty means ``.yadtq/worker-<web_port>``
    #: so that several workers on one machine never share a store.
    data_dir: str = ""
    worker_id: str = field(default_factory=_default_worker_id)
    heartbeat_interval: float = 1.0
    #: Seconds without an answer from the broker after which a worker restarts itself
    #: to wait for it (answering 503) and rebuild its tables (yadtq_app.broker_link).
    broker_lost_after: float = 10.0
    #: A worker not heard from for this long is shown dead (default 3 heartbeats).
    worker_timeout: Optional[float] = None
    #: Consumer-group timeouts; ``None`` means the broker profile's choice.
    session_timeout: Optional[float] = None
    heartbeat_timeout: Optional[float] = None
    #: Consumer fetch long-poll wait in ms; ``None`` means the broker profile's choice.
    fetch_max_wait_ms: Optional[int] = None
    #: The fetch wait while tasks flow (ms; see ``yadtq_app.compat.FetchWait``); ``None``
    #: means the broker profile's choice (embedded: 3; Kafka: the same as when idle).
    busy_fetch_max_wait_ms: Optional[int] = None
    #: How long the producer waits to batch messages (ms); ``None`` is Faust's default (0).
    producer_linger_ms: Optional[float] = None
    #: Correct the embedded broker's wrong end offsets (see :mod:`yadtq_app.compat`);
    #: ``None`` means the broker profile's choice (on for ``embedded``, off for ``kafka``).
    fix_end_offsets: Optional[bool] = None
    #: Retries for a task that sets none (per task: ``@task(max_retries=...)``).
    default_max_retries: int = 0
    #: Backoff before retry n: ``retry_backoff * 2**(n-1)`` seconds, capped at
    #: ``retry_backoff_max``, plus up to ``retry_jitter`` of it at random.
    retry_backoff: float = 1.0
    retry_backoff_max: float = 300.0
    retry_jitter: float = 0.25
    #: Processes for tasks registered with ``process=True`` (killable at their time limit).
    processes: int = 2
    #: Seconds a finished task's status is kept; 0 keeps it forever.
    result_ttl: float = 86_400.0
    #: RocksDB memory per table partition (MiB): the write buffer (two at most, then it is
    #: flushed to disk) and the block cache. Faust's defaults, 64 MiB buffers and a 2 GiB
    #: cache per partition, let a worker grow by about 1 KiB per task it ran.
    rocksdb_write_buffer_mb: float = 4.0
    rocksdb_block_cache_mb: float = 8.0
    #: How to reach the brokers (see :mod:`yadtq_app.security`): ``PLAINTEXT``, ``SSL``,
    #: ``SASL_PLAINTEXT`` or ``SASL_SSL``. Anything but ``PLAINTEXT`` implies the kafka profile.
    security_protocol: str = "PLAINTEXT"
    sasl_mechanism: str = "PLAIN"
    sasl_username: str = ""
    sasl_password: str = field(default="", repr=False)
    #: PEM files: the CA that signed the brokers' certificates (empty: the system's CAs),
    #: and this client's certificate and key for brokers that require TLS client auth.
    ssl_cafile: str = ""
    ssl_certfile: str = ""
    ssl_keyfile: str = ""
    log_level: str = "info"

    def __post_init__(self) -> None:
        def bad(name: str, why: str) -> ConfigurationError:
            return ConfigurationError(f"{ENV[name][0]} ({name}) {why}")

        if self.broker_profile not in PROFILES:
            raise bad("broker_profile", f"must be one of {', '.join(PROFILES)}, not {self.broker_profile!r}")
        if self.partitions < 1:
            raise bad("partitions", "must be at least 1")
        if self.replication_factor < 1:
            raise bad("replication_factor", "must be at least 1")
        if self.concurrency < 1:
            raise bad("concurrency", "must be at least 1")
        if self.default_timeout <= 0:
            raise bad("default_timeout", "must be positive")
        if self.heartbeat_interval <= 0:
            raise bad("heartbeat_interval", "must be positive")
        if self.broker_lost_after <= 0:
            raise bad("broker_lost_after", "must be positive")
        if self.default_max_retries < 0:
            raise bad("default_max_retries", "must not be negative")
        if self.retry_backoff < 0 or self.retry_backoff_max < 0:
            raise bad("retry_backoff", "and YADTQ_RETRY_BACKOFF_MAX must not be negative")
        if not 0 <= self.retry_jitter <= 10:
            raise bad("retry_jitter", "must be between 0 and 10 (a fraction of the backoff)")
        if self.processes < 1:
            raise bad("processes", "must be at least 1")
        for name in ("rocksdb_write_buffer_mb", "rocksdb_block_cache_mb"):
            if getattr(self, name) <= 0:
                raise bad(name, "must be positive")
        for name in ("fetch_max_wait_ms", "busy_fetch_max_wait_ms"):
            if (getattr(self, name) or 0) < 0:
                raise bad(name, "must not be negative")
        if self.max_message_bytes < 1 or self.max_result_bytes < 1:
            raise bad("max_message_bytes", "and YADTQ_MAX_RESULT_BYTES must be positive")
        if self.max_message_bytes + self.max_result_bytes + ROW_HEADROOM > self.record_limit:
            raise bad("max_message_bytes", f"plus YADTQ_MAX_RESULT_BYTES must stay {ROW_HEADROOM} bytes under the "
                      f"record limit ({self.record_limit} bytes): a task's status row holds both, its error "
                      "and its history")
        if self.submit_timeout <= 0:
            raise bad("submit_timeout", "must be positive")
        if self.result_ttl < 0:
            raise bad("result_ttl", "must not be negative (0 keeps results forever)")
        for name in ("http_idle_timeout", "http_read_timeout"):
            if not getattr(self, name) > 0:
                raise bad(name, "must be positive")
        if self.max_forwarded_long_polls < 1:
            raise bad("max_forwarded_long_polls", "must be at least 1")
        if not 1 <= self.max_nesting <= 500:
            raise bad("max_nesting", "must be from 1 to 500 (JSON decoding recurses once per level)")
        if not 0 < self.web_port < 65536:
            raise bad("web_port", "must be a TCP port (1-65535)")
        if not self.broker_url.startswith("kafka://"):
            raise bad("broker_url", f"must start with kafka://, got {self.broker_url!r}")
        try:
            if not self.broker_hosts:
                raise ValueError("no host")
        except ValueError as exc:
            raise bad("broker_url", f"is not a list of host:port ({exc}); write IPv6 hosts as [::1]:9092") from None
        if self.min_insync_replicas is not None and not 1 <= self.min_insync_replicas <= self.replication_factor:
            raise bad("min_insync_replicas", f"must be between 1 and YADTQ_REPLICATION_FACTOR "
                      f"({self.replication_factor}): acks=all writes would always fail")
        self._check_security(bad)

    def _check_security(self, bad: Callable[[str, str], ConfigurationError]) -> None:
        """Reject security settings that contradict each other (files are read later)."""
        protocol = self.security_protocol
        if protocol not in SECURITY_PROTOCOLS:
            raise bad("security_protocol", f"must be one of {', '.join(SECURITY_PROTOCOLS)}, not {protocol!r}")
        if protocol.startswith("SASL_"):
            if self.sasl_mechanism not in SASL_MECHANISMS:
                raise bad("sasl_mechanism", f"must be one of {', '.join(SASL_MECHANISMS)}, "
                          f"not {self.sasl_mechanism!r}")
            for name in ("sasl_username", "sasl_password"):
                if not getattr(self, name):
                    raise bad(name, f"is required with YADTQ_SECURITY_PROTOCOL={protocol}")
        else:
            for name in ("sasl_username", "sasl_password"):
                if getattr(self, name):
                    raise bad(name, f"is set, but YADTQ_SECURITY_PROTOCOL={protocol} does not use SASL "
                              "(use SASL_SSL or SASL_PLAINTEXT)")
        if protocol not in ("SSL", "SASL_SSL"):
            for name in ("ssl_cafile", "ssl_certfile", "ssl_keyfile"):
                if getattr(self, name):
                    raise bad(name, f"is set, but YADTQ_SECURITY_PROTOCOL={protocol} does not use TLS "
                              "(use SSL or SASL_SSL)")
        if self.ssl_keyfile and not self.ssl_certfile:
            raise bad("ssl_keyfile", "needs YADTQ_SSL_CERTFILE (the client certificate it belongs to)")

    # -- derived values -----------------------------------------------------------
    @property
    def broker_hosts(self) -> list[tuple[str, int]]:
        """``(host, port)`` of every bootstrap server in :attr:`broker_url`."""
        hosts = []
        for part in self.broker_url[len("kafka://"):].split(";"):
            for item in part.split(","):
                item = item.strip()
                if not item:
                    continue
                u = urlsplit(f"//{item}")
                hosts.append((u.hostname or "127.0.0.1", u.port or 9092))
        return hosts

    @property
    def bootstrap_servers(self) -> str:
        """The broker list as Kafka clients take it: ``host:port,host:port``."""
        return ",".join(f"{h}:{p}" for h, p in self.broker_hosts)

    @property
    def resolved_profile(self) -> str:
        """The broker profile in force: ``embedded`` or ``kafka``."""
        if self.broker_profile != "auto":
            return self.broker_profile
        if self.security_protocol != "PLAINTEXT":
            return "kafka"  # the embedded broker has neither TLS nor SASL (e.g. a port-forward to a cluster)
        return "embedded" if all(_is_loopback(h) for h, _ in self.broker_hosts) else "kafka"

    @property
    def store_options(self) -> dict[str, int]:
        """Options of every RocksDB table store (see ``rocksdb_write_buffer_mb``)."""
        mib = 1024 * 1024
        return {"write_buffer_size": int(self.rocksdb_write_buffer_mb * mib), "max_write_buffer_number": 2,
                "block_cache_size": int(self.rocksdb_block_cache_mb * mib)}

    @property
    def record_limit(self) -> int:
        """The largest record value yadtq writes (bytes): the producer's request limit
        less room for the key, headers and batch framing. Anything larger is refused
        before it reaches the producer (:class:`~yadtq_app.errors.RecordTooLarge`)."""
        return PRODUCER_MAX_REQUEST_SIZE - RECORD_OVERHEAD

    @property
    def effective_worker_timeout(self) -> float:
        return self.worker_timeout if self.worker_timeout is not None else 3 * self.heartbeat_interval

    @property
    def events_topic(self) -> str:
        return f"{self.app_id}-task-events"

    @property
    def dead_letter_topic(self) -> str:
        return f"{self.app_id}-dead-letters"

    @property
    def sequencer_topic(self) -> str:
        return f"{self.app_id}-sequencer"

    @property
    def heartbeat_topic(self) -> str:
        return f"{self.app_id}-heartbeats"

    @property
    def resolved_data_dir(self) -> str:
        return self.data_dir or f".yadtq/worker-{self.web_port}"

    def topics(self) -> dict[str, int]:
        """Every topic yadtq uses (Faust's internal assignor topic aside) → partitions."""
        p = self.partitions
        return {
            self.task_topic: p,
            self.events_topic: p,
            f"{self.app_id}-task-status-changelog": p,
            f"{self.app_id}-task-schedule-changelog": p,
            self.sequencer_topic: p,
            f"{self.app_id}-key-queues-changelog": p,
            self.heartbeat_topic: 1,
            f"{self.app_id}-workers-changelog": 1,
            self.dead_letter_topic: 1,
            f"{self.app_id}-dead-letters-changelog": 1,
        }

    @property
    def web_url(self) -> str:
        return f"http://{self.web_host}:{self.web_port}"

    def replace(self, **changes: object) -> "Settings":
        """A copy with some fields changed."""
        return dataclasses.replace(self, **changes)  # type: ignore[arg-type]

    # -- environment -----------------------------------------------------------------
    @classmethod
    def from_env(cls, environ: Optional[Mapping[str, str]] = None) -> "Settings":
        """Build settings from ``YADTQ_*`` variables (``os.environ`` by default)."""
        env = os.environ if environ is None else environ
        kwargs: dict[str, object] = {}
        for name, (var, conv) in ENV.items():
            raw = env.get(var)
            if raw is None or raw == "":
                continue
            try:
                kwargs[name] = conv(raw)
            except ValueError as exc:
                raise ConfigurationError(f"{var}={raw!r}: {exc}") from None
        return cls(**kwargs)  # type: ignore[arg-type]


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _upper(raw: str) -> str:
    return raw.strip().upper()


def _bool(raw: str) -> bool:
    value = raw.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise ValueError("expected one of 1/0, true/false, yes/no, on/off")


def _modules(raw: str) -> tuple[str, ...]:
    mods = tuple(m.strip() for m in raw.split(",") if m.strip())
    if not mods:
        raise ValueError("no module names")
    return mods


ENV: dict[str, tuple[str, object]] = {
    "broker_url": ("YADTQ_BROKER_URL", str),
    "broker_profile": ("YADTQ_BROKER_PROFILE", str),
    "app_id": ("YADTQ_APP_ID", str),
    "task_topic": ("YADTQ_TASK_TOPIC", str),
    "partitions": ("YADTQ_PARTITIONS", int),
    "replication_factor": ("YADTQ_REPLICATION_FACTOR", int),
    "task_modules": ("YADTQ_TASK_MODULES", _modules),
    "concurrency": ("YADTQ_CONCURRENCY", int),
    "default_timeout": ("YADTQ_DEFAULT_TIMEOUT", float),
    "max_message_bytes": ("YADTQ_MAX_MESSAGE_BYTES", int),
    "max_result_bytes": ("YADTQ_MAX_RESULT_BYTES", int),
    "submit_timeout": ("YADTQ_SUBMIT_TIMEOUT", float),
    "web_host": ("YADTQ_WEB_HOST", str),
    "web_port": ("YADTQ_WEB_PORT", int),
    "max_nesting": ("YADTQ_MAX_NESTING", int),
    "http_idle_timeout": ("YADTQ_HTTP_IDLE_TIMEOUT", float),
    "http_read_timeout": ("YADTQ_HTTP_READ_TIMEOUT", float),
    "max_forwarded_long_polls": ("YADTQ_MAX_FORWARDED_LONG_POLLS", int),
    "data_dir": ("YADTQ_DATA_DIR", str),
    "worker_id": ("YADTQ_WORKER_ID", str),
    "heartbeat_interval": ("YADTQ_HEARTBEAT_INTERVAL", float),
    "broker_lost_after": ("YADTQ_BROKER_LOST_AFTER", float),
    "worker_timeout": ("YADTQ_WORKER_TIMEOUT", float),
    "session_timeout": ("YADTQ_SESSION_TIMEOUT", float),
    "heartbeat_timeout": ("YADTQ_CONSUMER_HEARTBEAT", float),
    "fetch_max_wait_ms": ("YADTQ_FETCH_MAX_WAIT_MS", int),
    "busy_fetch_max_wait_ms": ("YADTQ_BUSY_FETCH_MAX_WAIT_MS", int),
    "producer_linger_ms": ("YADTQ_PRODUCER_LINGER_MS", float),
    "fix_end_offsets": ("YADTQ_FIX_END_OFFSETS", _bool),
    "default_max_retries": ("YADTQ_DEFAULT_MAX_RETRIES", int),
    "retry_backoff": ("YADTQ_RETRY_BACKOFF", float),
    "retry_backoff_max": ("YADTQ_RETRY_BACKOFF_MAX", float),
    "retry_jitter": ("YADTQ_RETRY_JITTER", float),
    "processes": ("YADTQ_PROCESSES", int),
    "result_ttl": ("YADTQ_RESULT_TTL", float),
    "rocksdb_write_buffer_mb": ("YADTQ_ROCKSDB_WRITE_BUFFER_MB", float),
    "rocksdb_block_cache_mb": ("YADTQ_ROCKSDB_BLOCK_CACHE_MB", float),
    "min_insync_replicas": ("YADTQ_MIN_INSYNC_REPLICAS", int),
    "security_protocol": ("YADTQ_SECURITY_PROTOCOL", _upper),
    "sasl_mechanism": ("YADTQ_SASL_MECHANISM", _upper),
    "sasl_username": ("YADTQ_SASL_USERNAME", str),
    "sasl_password": ("YADTQ_SASL_PASSWORD", str),
    "ssl_cafile": ("YADTQ_SSL_CAFILE", str),
    "ssl_certfile": ("YADTQ_SSL_CERTFILE", str),
    "ssl_keyfile": ("YADTQ_SSL_KEYFILE", str),
    "log_level": ("YADTQ_LOG_LEVEL", str),
}
