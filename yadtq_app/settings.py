"""Settings: one frozen value object, read from ``YADTQ_*`` environment variables.

This is the only module that reads the environment. Everything else receives a
:class:`Settings` instance explicitly, so tests build their own instead of patching
``os.environ``. Each setting is declared once, as a field made by :func:`setting`
(variable, default, parser, doc); :meth:`Settings.from_env` and :func:`declarations`
read those declarations, and a test checks the README's settings table against them.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Optional, TypeVar, overload
from urllib.parse import urlsplit

from .errors import ConfigurationError
from .settings_checks import check

__all__ = ["Settings", "DEFAULT_BROKER_URL", "Declaration", "declarations", "setting", "command_line_port"]

DEFAULT_BROKER_URL = "kafka://127.0.0.1:9092"
#: The producer's largest request (Faust's default, set explicitly on the app) and the
#: room kept in it for a record's key, headers and batch framing (bytes).
PRODUCER_MAX_REQUEST_SIZE = 1_000_000
RECORD_OVERHEAD = 16 * 1024

_T = TypeVar("_T")


@dataclass(frozen=True)
class Declaration:
    """One setting as declared: its variable, parser, default and one-line doc.

    ``default`` is ``dataclasses.MISSING`` when the value is computed per process;
    ``shown`` is how documentation writes a default that is not a literal value
    (``profile``, ``<hostname>-<pid>``), else ``None``.
    """

    env: str
    parse: Callable[[str], Any]
    default: Any
    doc: str
    shown: Optional[str] = None


@overload
def setting(env: str, default: _T, parse: Callable[[str], _T], doc: str, *,
            shown: Optional[str] = None, secret: bool = False) -> _T: ...
@overload
def setting(env: str, *, factory: Callable[[], _T], parse: Callable[[str], _T], doc: str,
            shown: str) -> _T: ...
def setting(env: str, default: Any = dataclasses.MISSING, parse: Callable[[str], Any] = str, doc: str = "", *,
            factory: Optional[Callable[[], Any]] = None, shown: Optional[str] = None, secret: bool = False) -> Any:
    """A :class:`Settings` field read from ``env`` with ``parse``; ``secret`` keeps it out of ``repr``.

    With ``factory`` the default is computed for each instance (``shown`` then says how).
    """
    meta = {"yadtq": Declaration(env, parse, default, doc, shown)}
    if factory is not None:
        return field(default_factory=factory, repr=not secret, metadata=meta)
    return field(default=default, repr=not secret, metadata=meta)


def _default_worker_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


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


_PROFILE = "profile"  # how the docs show "None: the broker profile's choice"


@dataclass(frozen=True)
class Settings:
    """Everything a yadtq process can be configured with.

    Each field is declared with :func:`setting`: its ``YADTQ_*`` variable, default,
    parser and doc. The README's settings table lists them (a test keeps it in step).
    Construction validates every field and raises :class:`ConfigurationError`.
    """

    broker_url: str = setting("YADTQ_BROKER_URL", DEFAULT_BROKER_URL, str,
                              "Kafka bootstrap servers (``kafka://h1:9092;h2:9092``)")
    broker_profile: str = setting("YADTQ_BROKER_PROFILE", "auto", str,
                                  "``embedded``, ``kafka`` or ``auto`` (embedded when every broker host is loopback)")
    app_id: str = setting("YADTQ_APP_ID", "yadtq", str, "consumer group and prefix of the internal topics")
    task_topic: str = setting("YADTQ_TASK_TOPIC", "task_queue", str, "the task topic")
    partitions: int = setting("YADTQ_PARTITIONS", 8, int,
                              "partitions of the task topic, events topic and status table")
    replication_factor: int = setting("YADTQ_REPLICATION_FACTOR", 1, int, "replication of every topic yadtq creates")
    min_insync_replicas: Optional[int] = setting(
        "YADTQ_MIN_INSYNC_REPLICAS", None, int, "``min.insync.replicas`` of every topic yadtq creates on Kafka",
        shown="broker's")
    task_modules: tuple[str, ...] = setting("YADTQ_TASK_MODULES", ("yadtq_app.examples",), _modules,
                                            "comma-separated modules whose ``@task`` functions are registered")
    concurrency: int = setting("YADTQ_CONCURRENCY", 8, int, "tasks one worker runs at the same time")
    default_timeout: float = setting("YADTQ_DEFAULT_TIMEOUT", 300.0, float,
                                     "time limit (s) of a task that sets none")
    max_message_bytes: int = setting("YADTQ_MAX_MESSAGE_BYTES", 512 * 1024, int,
                                     "largest accepted task message and HTTP request body (bytes of JSON)")
    submit_timeout: float = setting("YADTQ_SUBMIT_TIMEOUT", 10.0, float,
                                    "seconds ``POST /tasks`` waits for the brokers to confirm before answering 503")
    max_result_bytes: int = setting("YADTQ_MAX_RESULT_BYTES", 256 * 1024, int,
                                    "largest result (bytes of JSON); a larger one fails the task (``ResultTooLarge``)")
    web_host: str = setting("YADTQ_WEB_HOST", "127.0.0.1", str, "host of the worker's HTTP API")
    web_port: int = setting("YADTQ_WEB_PORT", 6066, int, "port of the worker's HTTP API")
    max_nesting: int = setting("YADTQ_MAX_NESTING", 32, int,
                               "levels of arrays/objects a task message or request body may nest, itself included")
    http_idle_timeout: float = setting("YADTQ_HTTP_IDLE_TIMEOUT", 30.0, float,
                                       "seconds an HTTP connection may go without a complete request")
    http_read_timeout: float = setting("YADTQ_HTTP_READ_TIMEOUT", 30.0, float,
                                       "seconds a client may take to send a request body (else 408)")
    max_forwarded_long_polls: int = setting("YADTQ_MAX_FORWARDED_LONG_POLLS", 1000, int,
                                            "long polls one worker forwards to others at once, on a pool of their own")
    data_dir: str = setting("YADTQ_DATA_DIR", "", str,
                            "the worker's RocksDB tables; empty: ``.yadtq/worker-<web_port>``",
                            shown=".yadtq/worker-<port>")
    worker_id: str = setting("YADTQ_WORKER_ID", factory=_default_worker_id, parse=str,
                             doc="name shown in statuses and ``/workers``", shown="<hostname>-<pid>")
    heartbeat_interval: float = setting("YADTQ_HEARTBEAT_INTERVAL", 1.0, float, "seconds between heartbeats")
    broker_lost_after: float = setting("YADTQ_BROKER_LOST_AFTER", 10.0, float,
                                       "seconds without an answer from the broker before a worker restarts itself")
    stream_processing_timeout: float = setting(
        "YADTQ_STREAM_PROCESSING_TIMEOUT", 300.0, float,
        "seconds a partition may go unfetched, or its stream stand still with records left, "
        "before the worker logs it as an error (Faust's ``stream_processing_timeout``)")
    worker_timeout: Optional[float] = setting("YADTQ_WORKER_TIMEOUT", None, float,
                                              "a worker silent this long is shown dead; ``None``: 3 heartbeats",
                                              shown="3 × heartbeat")
    session_timeout: Optional[float] = setting("YADTQ_SESSION_TIMEOUT", None, float,
                                               "consumer-group session timeout (s)", shown=_PROFILE)
    heartbeat_timeout: Optional[float] = setting("YADTQ_CONSUMER_HEARTBEAT", None, float,
                                                 "consumer-group heartbeat (s)", shown=_PROFILE)
    fetch_max_wait_ms: Optional[int] = setting("YADTQ_FETCH_MAX_WAIT_MS", None, int,
                                               "consumer fetch long-poll wait (ms)", shown=_PROFILE)
    busy_fetch_max_wait_ms: Optional[int] = setting(
        "YADTQ_BUSY_FETCH_MAX_WAIT_MS", None, int, "the fetch wait while tasks flow (ms; ``FetchWait``)",
        shown=_PROFILE)
    producer_linger_ms: float = setting("YADTQ_PRODUCER_LINGER_MS", 5.0, float,
                                        "the longest the producer holds a record to batch it (ms); "
                                        "it sends at once when the worker has nothing else to do")
    fix_end_offsets: Optional[bool] = setting("YADTQ_FIX_END_OFFSETS", None, _bool,
                                              "correct the embedded broker's wrong end offsets", shown=_PROFILE)
    default_max_retries: int = setting("YADTQ_DEFAULT_MAX_RETRIES", 0, int, "retries of a task that sets none")
    retry_backoff: float = setting("YADTQ_RETRY_BACKOFF", 1.0, float,
                                   "backoff (s) before retry n: ``retry_backoff * 2**(n-1)``, capped")
    retry_backoff_max: float = setting("YADTQ_RETRY_BACKOFF_MAX", 300.0, float, "the cap of the retry backoff (s)")
    retry_jitter: float = setting("YADTQ_RETRY_JITTER", 0.25, float,
                                  "up to this fraction of the backoff is added at random")
    processes: int = setting("YADTQ_PROCESSES", 2, int, "processes per worker for ``@task(process=True)``")
    result_ttl: float = setting("YADTQ_RESULT_TTL", 86_400.0, float,
                                "seconds a finished task's status is kept; 0 keeps it forever")
    queued_hold: float = setting("YADTQ_QUEUED_HOLD", 30.0, float,
                                 "seconds a submission's ``queued`` status may live in its worker's memory only, "
                                 "waiting to be written with the task's first row (0: written at once)")
    gc_threshold: int = setting("YADTQ_GC_THRESHOLD", 10_000, int,
                                "objects a worker allocates between its youngest garbage collections "
                                "(Python's default: 700)")
    rocksdb_write_buffer_mb: float = setting("YADTQ_ROCKSDB_WRITE_BUFFER_MB", 4.0, float,
                                             "RocksDB write buffer per table partition (MiB; two at most)")
    rocksdb_block_cache_mb: float = setting("YADTQ_ROCKSDB_BLOCK_CACHE_MB", 8.0, float,
                                            "RocksDB block cache per table partition (MiB)")
    security_protocol: str = setting("YADTQ_SECURITY_PROTOCOL", "PLAINTEXT", _upper,
                                     "``PLAINTEXT``, ``SSL``, ``SASL_PLAINTEXT`` or ``SASL_SSL``")
    sasl_mechanism: str = setting("YADTQ_SASL_MECHANISM", "PLAIN", _upper,
                                  "``PLAIN``, ``SCRAM-SHA-256`` or ``SCRAM-SHA-512``")
    sasl_username: str = setting("YADTQ_SASL_USERNAME", "", str, "SASL user (required with ``SASL_*``)")
    sasl_password: str = setting("YADTQ_SASL_PASSWORD", "", str, "SASL password (required with ``SASL_*``)",
                                 secret=True)
    ssl_cafile: str = setting("YADTQ_SSL_CAFILE", "", str,
                              "PEM bundle of the CAs that signed the brokers' certificates; empty: the system's",
                              shown="system CAs")
    ssl_certfile: str = setting("YADTQ_SSL_CERTFILE", "", str, "client certificate (PEM) for TLS client auth")
    ssl_keyfile: str = setting("YADTQ_SSL_KEYFILE", "", str, "client key (PEM) for TLS client auth")
    log_level: str = setting("YADTQ_LOG_LEVEL", "info", str, "worker log level")

    def __post_init__(self) -> None:
        check(self)

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

    def replace(self, **changes: Any) -> "Settings":
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)

    # -- environment -----------------------------------------------------------------
    @classmethod
    def from_env(cls, environ: Optional[Mapping[str, str]] = None) -> "Settings":
        """Build settings from ``YADTQ_*`` variables (``os.environ`` by default).

        Unset and empty variables keep the default. Raises :class:`ConfigurationError`
        naming the variable when a value does not parse or is invalid.
        """
        env = os.environ if environ is None else environ
        kwargs: dict[str, Any] = {}
        for name, decl in declarations().items():
            raw = env.get(decl.env)
            if raw is None or raw == "":
                continue
            try:
                kwargs[name] = decl.parse(raw)
            except ValueError as exc:
                raise ConfigurationError(f"{decl.env}={raw!r}: {exc}") from None
        return cls(**kwargs)


def declarations() -> dict[str, Declaration]:
    """Every setting's :class:`Declaration`, by field name, in declaration order."""
    return {f.name: f.metadata["yadtq"] for f in dataclasses.fields(Settings)}


#: Field name → (variable, parser), derived from the declarations.
ENV: dict[str, tuple[str, Callable[[str], Any]]] = {
    name: (decl.env, decl.parse) for name, decl in declarations().items()}


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def command_line_port(argv: list[str]) -> Optional[int]:
    """The web port a ``faust … worker`` (or ``yadtq worker``) command line names with
    ``--web-port N`` / ``-p N``, if any: Faust reads it only after ``yadtq_app.application``
    built the settings, so the data folder and the advertised URL would keep the default port."""
    if "worker" not in argv or not any(part in ("faust", "yadtq") or part.endswith("cli.py")
                                       for part in Path(argv[0] if argv else "").parts):
        return None
    for i, arg in enumerate(argv):
        value = None
        if arg in ("--web-port", "-p") and i + 1 < len(argv):
            value = argv[i + 1]
        elif arg.startswith("--web-port="):
            value = arg.split("=", 1)[1]
        if value is not None:
            try:
                return int(value)
            except ValueError:
                return None  # Faust refuses it in its own words
    return None
