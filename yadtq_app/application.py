"""Build the Faust app from :class:`~yadtq_app.settings.Settings`.

``faust -A yadtq_app worker`` and ``yadtq worker`` both load :data:`app` from here (``yadtq_app.app``
resolves to it; the module is not called ``app.py`` so the two names never clash).
Agents (``agents/``), tables (``tables/``) and web views (``yadtq_app.web_*``) are
found by Faust's autodiscovery, named here as strings, so this module never imports
them and no import cycle forms.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import socket
import sys
import time
from typing import Any, Awaitable, Callable, Optional, Set

import aiohttp
import faust
from faust.types import TP

from .admin import TopicSpec, ensure_topics, topic_specs
from .backlog import Backlog
from .broker import port_is_free
from .broker_link import BrokerWatch, restart_process, wait_for_broker
from .datadir import DataDirLock, check_marker
from .errors import ConfigurationError
from .execution import ProcessRunner, ThreadRunner
from .faust_worker import Worker
from .fencing import FencedTable, FreezeGuard
from .group_lag import GroupLag
from .held_submissions import HeldSubmissions
from .http_server import WebServer
from .kafka import private
from .kafka.poll import STREAM_BUFFER_MAXSIZE, max_poll_records
from .kafka.profiles import BrokerProfile, profile_for
from .kafka.watchdogs import RecoveryWatchdog, StreamWatchdog
from .liveness import CrashWatch, crash_reason
from .metrics import Metrics
from .peers import PeerTasks
from .registry import TaskRegistry, default_registry
from .running import RunningTasks
from .security import broker_credentials, client_options
from .settings import PRODUCER_MAX_REQUEST_SIZE, Settings, command_line_port
from .silent_peers import SilentPeers
from .worker_memory import FinishWaiters, RecentlyFinished, RecentTasks, WorkerStats

__all__ = ["YadtqApp", "create_app", "app", "settings", "EXIT_CONFIG"]

logger = logging.getLogger(__name__)

#: The exit status of a worker that cannot start with its settings (``EX_CONFIG``).
EXIT_CONFIG = 78

#: Modules Faust scans for agents, tables, timers and web views.
AUTODISCOVER = ["yadtq_app.agents", "yadtq_app.tables", "yadtq_app.routing", "yadtq_app.web_submit",
                "yadtq_app.web_tasks", "yadtq_app.web_cluster", "yadtq_app.dashboard"]


class YadtqApp(faust.App):
    """A Faust app that also carries yadtq's settings, task registry and worker state."""

    settings: Settings
    registry: TaskRegistry
    profile: BrokerProfile
    stats: WorkerStats
    #: The threads that run plain ``def`` tasks.
    threads: ThreadRunner
    #: Final statuses of tasks this worker ran, ahead of the status table.
    finished: RecentlyFinished
    #: Attempts running here, for cancel requests.
    running: RunningTasks
    #: The pool for ``process=True`` tasks.
    processes: ProcessRunner
    #: Status reads waiting for a task to finish.
    finish_waiters: FinishWaiters

    def __init__(self, settings: Settings, registry: TaskRegistry, **options: Any) -> None:
        self.settings = settings
        self.registry = registry
        self.profile = profile_for(settings)
        self.stats = WorkerStats()
        self.threads = ThreadRunner(settings.concurrency, name="yadtq-task")
        #: The consumer's assignment, cached between rebalances (None: ask the consumer).
        self._assigned: Optional[frozenset[TP]] = None
        self.finished = RecentlyFinished()
        #: The tasks whose status rows this worker wrote last (the dashboard's list).
        self.recent = RecentTasks()
        #: The consumer group's lag per task partition, read from the broker.
        self.group_lag = GroupLag(self)
        self.running = RunningTasks()
        self.finish_waiters = FinishWaiters()
        self.held = HeldSubmissions(settings.queued_hold)  # queued rows not written yet (agents.status)
        #: Task messages no worker has read yet, looked up before a 404 (yadtq_app.status_reads).
        self.backlog = Backlog(settings, settings.task_topic)
        #: What the other alive workers register (refreshed by yadtq_app.web_cluster).
        self.peer_tasks = PeerTasks(settings.worker_id, registry.names(), registry.digest())
        #: The workers that did not answer a forwarded request (yadtq_app.routing, status_reads).
        self.silent_peers = SilentPeers()
        self.processes = ProcessRunner(settings.processes)
        self._long_poll_http: Optional[aiohttp.ClientSession] = None
        self._producer_starting = asyncio.Lock()
        session = self.profile.faust_options()["broker_session_timeout"]
        #: Closes the worker's gate after it was frozen (see yadtq_app.fencing).
        self.freeze_guard = FreezeGuard(threshold=max(1.0, session / 2), hold=2 * session)
        self.started_at = time.time()
        self.hostname = socket.gethostname()
        super().__init__(settings.app_id, **options)
        self.on_partitions_revoked.connect(self._forget_assignment)
        self.on_partitions_assigned.connect(self._forget_assignment)
        self.on_partitions_assigned.connect(self._end_revoking)
        #: Prometheus metrics (``GET /metrics``).
        self.metrics = Metrics(self)
        self.on_partitions_assigned.connect(self._count_rebalance)
        #: From the start of a rebalance until partitions are assigned again: what this
        #: worker holds may already belong to another worker (see agents.leases).
        self.revoking = False
        self.stopping = False  # from the start of the worker's stop: its acks no longer count (on_stop)
        #: Awaited when a rebalance begins (agents.leases leases the running tasks), and each time
        #: Faust waits for the messages being processed (agents.batches lets go of those not started).
        self.on_revoking: list[Callable[[], Awaitable[None]]] = []
        self.on_wait_empty: list[Callable[[], Awaitable[None]]] = []
        #: Whether a rebalance need not wait for a message: its task is leased (agents.leases sets it).
        self.lease_covers: Callable[[Any], bool] = lambda message: False
        #: Ends the process once the worker cannot work (see yadtq_app.liveness).
        self.crash_watch = CrashWatch(lambda: crash_reason(self), exit=self._exit_after_crash)
        self.recovery_watchdog = RecoveryWatchdog(self)
        self.timer(interval=1.0, name="yadtq.recovery_watchdog")(self.recovery_watchdog.check)
        #: This worker's hold on its data folder (see yadtq_app.datadir).
        self.data_lock = DataDirLock(settings.resolved_data_dir)
        #: Set once the broker answered at start (see yadtq_app.broker_link).
        self.broker_watch: Optional[BrokerWatch] = None
        self.timer(interval=2.0, name="yadtq.broker_watch")(self._watch_broker)
        self.stream_watchdog = StreamWatchdog(self)
        self.timer(interval=1.0, name="yadtq.stream_watchdog")(self.stream_watchdog.check)
        #: Topics whose messages may be read twice (the task agent decides from the row): one
        #: dropped unprocessed at a rebalance is read again (yadtq_app.kafka.commits.stale_ack).
        self.rereadable_topics = frozenset({settings.task_topic, settings.events_topic})

    async def maybe_start_producer(self) -> Any:
        """Faust's, without the three rounds of the event loop that mode's ``stampede``
        made every record sent take (it yields before and after each call): the
        producer, started first if it is not yet, one caller at a time."""
        if self.producer.started and not self.in_transaction:
            return self.producer
        async with self._producer_starting:
            return await faust.App.maybe_start_producer.__wrapped__(self)

    def _discovery_modules(self) -> list[str]:
        """The modules Faust scans: :data:`AUTODISCOVER` only (Faust adds the app's package, whose scan
        imported ``yadtq_app.examples``, registering its tasks whatever ``YADTQ_TASK_MODULES`` said)."""
        return list(AUTODISCOVER)

    def _new_web(self) -> Any:
        return WebServer(self)  # yadtq's limits on the HTTP server (yadtq_app.http_server)

    def _new_transport(self) -> Any:
        return self.profile.transport_class()(self.conf.broker_consumer, self)

    def topic_specs(self) -> list[TopicSpec]:
        """Every topic the worker needs, with its partition count."""
        s = self.settings
        changelogs = {t.changelog_topic.get_topic_name(): t.partitions or s.partitions for t in self.tables.values()}
        return topic_specs({**s.topics(), **changelogs}, replication_factor=s.replication_factor,
                           config=self.profile.topic_config(), compacted=changelogs)

    async def on_first_start(self) -> None:
        self.crash_watch.start()
        await super().on_first_start()
        await ensure_topics(self.settings.bootstrap_servers, self.topic_specs(),
                            client_options=client_options(self.settings))

    async def prepare_local_state(self) -> None:
        """Take the data folder, wait for the broker, and wipe tables that belong to
        another broker (:mod:`yadtq_app.datadir`); a setting that stops this worker
        from starting ends the process with one log line naming it."""
        s = self.settings
        host, port = self.conf.web_bind, self.conf.web_port
        try:
            if not port_is_free(host, port):
                raise ConfigurationError(f"port {port} ({host}) is taken: give this worker another with --web-port "
                                         "(or YADTQ_WEB_PORT)")
            self.data_lock.acquire()
        except ConfigurationError as exc:
            logger.error("cannot start: %s", exc)
            for handler in logging.getLogger().handlers:
                handler.flush()
            if sys.__stderr__ is not None:
                sys.__stderr__.flush()
            os._exit(EXIT_CONFIG)
        changelogs = [name for name in s.topics() if name.endswith("-changelog")]
        found = await wait_for_broker(s, changelogs, host=host, port=port)
        check_marker(s.resolved_data_dir, found)
        self.broker_watch = BrokerWatch(s, found.cluster_id, lost_after=s.broker_lost_after,
                                        restart=self._restart_for_broker)
        if self.profile.memory_only:
            self.add_future(self.broker_watch.watch_hangup())

    def _restart_for_broker(self, reason: str) -> None:
        if not self.should_stop:  # a worker on its way out (Ctrl-C stops the broker too) just ends
            restart_process(reason)

    def _exit_after_crash(self, code: int) -> None:
        """End the crashed worker; restart it instead if the broker is the cause (it
        went away or was replaced: Faust's table recovery then fails)."""
        why = self.broker_watch.explains_crash() if self.broker_watch is not None else None
        if why is not None:
            restart_process(why)
        os._exit(code)

    async def _watch_broker(self) -> None:
        if self.broker_watch is not None:
            await self.broker_watch.check()

    def fatal(self, reason: str) -> None:
        """The worker cannot go on: exit now (see :class:`~yadtq_app.liveness.CrashWatch`)."""
        self.crash_watch.die(reason)
    @property
    def long_poll_http(self) -> aiohttp.ClientSession:
        """The HTTP session that forwards long polls to other workers: a connection
        pool of its own (``YADTQ_MAX_FORWARDED_LONG_POLLS``), so held long polls never
        take the connections of other forwarded requests (``http_client``: 100)."""
        if self._long_poll_http is None:
            connector = aiohttp.TCPConnector(limit=self.settings.max_forwarded_long_polls, limit_per_host=0)
            self._long_poll_http = aiohttp.ClientSession(connector=connector)
        return self._long_poll_http

    async def on_stop(self) -> None:
        self.stopping = True
        self.flow_control.suspend()  # acks no longer count: held rows are read again elsewhere
        self.held.close()
        if self.broker_watch is not None:
            await self.broker_watch.close()
        await self.group_lag.close()
        await self.backlog.close()
        self.threads.close()
        self.processes.close()
        if self._long_poll_http is not None:
            await self._long_poll_http.close()
        await super().on_stop()

    def membership_lost(self) -> bool:
        """The group evicted this worker (e.g. it was frozen) and it has not rejoined yet."""
        return bool(private.consumer_thread(self.consumer).membership_lost())

    async def may_act_on(self, topic: str, partition: int, *, strict: bool = False) -> bool:
        """Whether this worker may act on a message of ``topic``/``partition`` now.

        Waits while the freeze guard is closed (:mod:`yadtq_app.fencing`) and, with
        ``strict`` (about to start a task's code, or to write its outcome into the table
        itself), while the group's heartbeats fail (:meth:`in_touch`): a worker cut off
        from the broker neither starts tasks nor writes rows another worker now owns.
        False at once if the group has evicted this worker (its commits fail from then
        on, so skipping the message leaves it to the partition's new owner, and
        returning rather than waiting lets Faust finish the rebalance that rejoins the
        group), or if the worker is stopping (its acks no longer count).
        """
        while True:
            if self.stopping or self.membership_lost():
                return False
            if self.freeze_guard.is_open() and (not strict or self.in_touch()):
                break
            await asyncio.sleep(0.05)
        return self._holds(topic, partition)

    def may_act_now(self, topic: str, partition: int) -> bool:
        """:meth:`may_act_on` without waiting: False while the freeze guard is closed."""
        return not self.membership_lost() and self.freeze_guard.is_open() and self._holds(topic, partition)

    def in_touch(self) -> bool:
        """Whether the group coordinator answered a heartbeat lately (half the session
        timeout): a worker cut off from the broker stops starting tasks well before the
        group gives its partitions to others (see yadtq_app.kafka.heartbeats)."""
        heartbeats = getattr(self.consumer, "heartbeats", None)
        return heartbeats is None or heartbeats.age() < self.out_of_touch_after

    @functools.cached_property
    def out_of_touch_after(self) -> float:
        """Seconds without a successful group heartbeat after which the worker holds back
        (read once: every task asks, and Faust's settings are slow to read)."""
        return max(self.conf.broker_session_timeout / 2, 2 * self.conf.broker_heartbeat_interval)

    def _holds(self, topic: str, partition: int) -> bool:
        assigned = self._assigned
        if assigned is None:
            try:
                assigned = self._assigned = frozenset(self.consumer.assignment())
            except Exception:  # noqa: BLE001 - no assignment yet
                return False
        return TP(topic, partition) in assigned

    async def _count_rebalance(self, *args: Any, **kwargs: Any) -> None:
        self.metrics.rebalances.inc()

    async def _forget_assignment(self, *args: Any, **kwargs: Any) -> None:
        self._assigned = None

    async def _end_revoking(self, *args: Any, **kwargs: Any) -> None:
        self.revoking = False

    async def _on_partitions_revoked(self, revoked: Set[TP]) -> None:
        # Faust waits here for every message being processed (stream_wait_empty), so for
        # every running task, before this worker rejoins the group; the group may form
        # the next generation without it meanwhile.
        if not self.should_stop:
            # The consumer's flow and flow control off first, as Faust's own revoke does
            # (again) below: nothing more is handed to the agents while the leases go out,
            # and from here on an ack does not count (yadtq_app.kafka.commits.stale_ack), so a task
            # that sees ``revoking`` and does not start is read again, not committed past.
            try:
                self.consumer.stop_flow()
            except Exception:  # noqa: BLE001 - no consumer yet
                pass
            self.flow_control.suspend()
            self.revoking = True
            for hook in self.on_revoking:
                try:
                    await hook()
                except Exception:  # the rebalance must go on
                    logger.exception("a rebalance hook failed")
        # Whoever waits for a row here asks again: it may be another worker's now.
        self.finish_waiters.wake_all()
        await super()._on_partitions_revoked(revoked)

    async def warm_metadata(self, *topics: str) -> None:
        """Load producer metadata for topics, which Faust's router needs to find owners."""
        producer = private.ensure_producer(self.producer)
        for topic in topics:
            await producer.partitions_for(topic)


def faust_options(settings: Settings) -> dict[str, Any]:
    """The Faust configuration for these settings (profile options included).

    Partitions, replication factor, acks and consumer-group timeouts come from the broker
    profile (:mod:`yadtq_app.kafka.profiles`), credentials from :mod:`yadtq_app.security`.
    """
    opts: dict[str, Any] = {
        "broker": settings.broker_url,
        "store": "rocksdb://",
        "datadir": os.path.abspath(settings.resolved_data_dir),
        "autodiscover": AUTODISCOVER,
        "origin": "yadtq_app",
        "broker_credentials": broker_credentials(settings),
        "web_host": settings.web_host,
        "web_bind": settings.web_host,
        "web_port": settings.web_port,
        "canonical_url": settings.web_url,
        "consumer_auto_offset_reset": "earliest",
        "table_standby_replicas": 0,
        "stream_processing_timeout": settings.stream_processing_timeout,  # logs only: docs/brokers.md
        "web_cors_options": None,
        "Worker": Worker,
        "Table": FencedTable,
        "producer_max_request_size": PRODUCER_MAX_REQUEST_SIZE,
        "producer_linger": settings.producer_linger_ms / 1000.0,  # ended early: yadtq_app.kafka.linger
        "stream_buffer_maxsize": STREAM_BUFFER_MAXSIZE,
        "broker_max_poll_records": max_poll_records(settings.partitions),  # why: yadtq_app.kafka.poll
    }
    opts.update(profile_for(settings).faust_options())
    return {k: v for k, v in opts.items() if v is not None}


def create_app(settings: Optional[Settings] = None, registry: Optional[TaskRegistry] = None) -> YadtqApp:
    """A :class:`YadtqApp` for these settings, with their task modules registered."""
    settings = settings if settings is not None else Settings.from_env()
    registry = registry if registry is not None else default_registry
    registry.load_modules(settings.task_modules)
    return YadtqApp(settings, registry, **faust_options(settings))


settings = Settings.from_env()
if (_port := command_line_port(sys.argv)) is not None and _port != settings.web_port:
    settings = settings.replace(web_port=_port)
app = create_app(settings)
