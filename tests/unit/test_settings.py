"""Settings.from_env with explicit mappings (os.environ is never touched)."""

from __future__ import annotations

import dataclasses
import re
from typing import Any

import pytest

from yadtq_app.errors import ConfigurationError
from yadtq_app.settings import DEFAULT_BROKER_URL, ENV, Settings, declarations


def test_defaults() -> None:
    s = Settings.from_env({})
    assert s.broker_url == DEFAULT_BROKER_URL == "kafka://127.0.0.1:9092"
    assert s.task_topic == "task_queue"
    assert s.partitions == 8
    assert s.task_modules == ("yadtq_app.examples",)
    assert s.broker_profile == "auto" and s.resolved_profile == "embedded"
    assert s.fix_end_offsets is None and s.session_timeout is None
    assert s.events_topic == "yadtq-task-events" and s.heartbeat_topic == "yadtq-heartbeats"
    assert s.web_url == "http://127.0.0.1:6066"
    assert s.effective_worker_timeout == 3.0


def test_every_field_is_declared_once() -> None:
    fields = {f.name: f for f in dataclasses.fields(Settings)}
    decls = declarations()
    assert list(decls) == list(fields)
    envs = [d.env for d in decls.values()]
    assert len(set(envs)) == len(envs) and all(re.fullmatch(r"YADTQ_[A-Z0-9_]+", e) for e in envs)
    assert ENV == {name: (d.env, d.parse) for name, d in decls.items()}
    defaults = Settings()
    for name, decl in decls.items():
        assert decl.doc and "\n" not in decl.doc, name
        if decl.default is dataclasses.MISSING:
            assert decl.shown and fields[name].default_factory is not dataclasses.MISSING, name
        else:
            assert getattr(defaults, name) == decl.default == fields[name].default, name


def test_from_env_reads_every_declared_variable() -> None:
    probe = {"broker_url": "kafka://b:1", "task_modules": "m", "fix_end_offsets": "1", "worker_timeout": "7",
             "min_insync_replicas": "1", "security_protocol": "ssl", "sasl_mechanism": "plain", "ssl_keyfile": "",
             "broker_profile": "kafka", "log_level": "debug", "sasl_username": "", "sasl_password": "",
             "gc_threshold": "7000"}
    environ = {d.env: probe.get(name, "7" if d.parse in (int, float) else "x") for name, d in declarations().items()}
    s = Settings.from_env(environ)
    for name, decl in declarations().items():
        raw = environ[decl.env]
        assert getattr(s, name) == (decl.default if raw == "" else decl.parse(raw)), name


def test_password_is_not_in_repr() -> None:
    s = Settings(security_protocol="SASL_SSL", sasl_username="u", sasl_password="hunter2")
    assert "hunter2" not in repr(s) and "sasl_username='u'" in repr(s)


def test_unrelated_and_empty_variables_are_ignored() -> None:
    s = Settings.from_env({"PATH": "/bin", "YADTQ_PARTITIONS": "", "yadtq_partitions": "3"})
    assert s.partitions == 8


@pytest.mark.parametrize("var, raw, field, value", [
    ("YADTQ_BROKER_URL", "kafka://kafka-1:9092", "broker_url", "kafka://kafka-1:9092"),
    ("YADTQ_BROKER_PROFILE", "kafka", "broker_profile", "kafka"),
    ("YADTQ_APP_ID", "myapp", "app_id", "myapp"),
    ("YADTQ_TASK_TOPIC", "jobs", "task_topic", "jobs"),
    ("YADTQ_PARTITIONS", "3", "partitions", 3),
    ("YADTQ_REPLICATION_FACTOR", "2", "replication_factor", 2),
    ("YADTQ_TASK_MODULES", "a.b, c ,,d", "task_modules", ("a.b", "c", "d")),
    ("YADTQ_CONCURRENCY", "16", "concurrency", 16),
    ("YADTQ_DEFAULT_TIMEOUT", "2.5", "default_timeout", 2.5),
    ("YADTQ_MAX_MESSAGE_BYTES", "1024", "max_message_bytes", 1024),
    ("YADTQ_MAX_RESULT_BYTES", "4096", "max_result_bytes", 4096),
    ("YADTQ_WEB_HOST", "0.0.0.0", "web_host", "0.0.0.0"),
    ("YADTQ_WEB_PORT", "7000", "web_port", 7000),
    ("YADTQ_DATA_DIR", "/tmp/d", "data_dir", "/tmp/d"),
    ("YADTQ_WORKER_ID", "w-1", "worker_id", "w-1"),
    ("YADTQ_HEARTBEAT_INTERVAL", "0.25", "heartbeat_interval", 0.25),
    ("YADTQ_WORKER_TIMEOUT", "9", "worker_timeout", 9.0),
    ("YADTQ_SESSION_TIMEOUT", "10", "session_timeout", 10.0),
    ("YADTQ_CONSUMER_HEARTBEAT", "1.5", "heartbeat_timeout", 1.5),
    ("YADTQ_FETCH_MAX_WAIT_MS", "20", "fetch_max_wait_ms", 20),
    ("YADTQ_BUSY_FETCH_MAX_WAIT_MS", "4", "busy_fetch_max_wait_ms", 4),
    ("YADTQ_PRODUCER_LINGER_MS", "2", "producer_linger_ms", 2.0),
    ("YADTQ_FIX_END_OFFSETS", "yes", "fix_end_offsets", True),
    ("YADTQ_FIX_END_OFFSETS", "0", "fix_end_offsets", False),
    ("YADTQ_FIX_END_OFFSETS", " On ", "fix_end_offsets", True),
    ("YADTQ_FIX_END_OFFSETS", "FALSE", "fix_end_offsets", False),
    ("YADTQ_LOG_LEVEL", "debug", "log_level", "debug"),
    ("YADTQ_MAX_NESTING", "64", "max_nesting", 64),
    ("YADTQ_GC_THRESHOLD", "700", "gc_threshold", 700),
    ("YADTQ_HTTP_IDLE_TIMEOUT", "5", "http_idle_timeout", 5.0),
    ("YADTQ_HTTP_READ_TIMEOUT", "2.5", "http_read_timeout", 2.5),
    ("YADTQ_MAX_FORWARDED_LONG_POLLS", "50", "max_forwarded_long_polls", 50),
])
def test_each_variable(var: str, raw: str, field: str, value: object) -> None:
    s = Settings.from_env({var: raw})
    got = getattr(s, field)
    assert got == value and type(got) is type(value)


def test_worker_timeout_overrides_heartbeat_multiple() -> None:
    assert Settings.from_env({"YADTQ_HEARTBEAT_INTERVAL": "2"}).effective_worker_timeout == 6.0
    assert Settings.from_env({"YADTQ_WORKER_TIMEOUT": "1"}).effective_worker_timeout == 1.0


@pytest.mark.parametrize("var, raw", [
    ("YADTQ_PARTITIONS", "eight"),
    ("YADTQ_PARTITIONS", "8.0"),
    ("YADTQ_WEB_PORT", "http"),
    ("YADTQ_DEFAULT_TIMEOUT", "5s"),
    ("YADTQ_FIX_END_OFFSETS", "maybe"),
    ("YADTQ_TASK_MODULES", " , ,"),
    ("YADTQ_FETCH_MAX_WAIT_MS", "1.5"),
])
def test_unparsable_values_name_the_variable(var: str, raw: str) -> None:
    with pytest.raises(ConfigurationError, match=var):
        Settings.from_env({var: raw})


@pytest.mark.parametrize("var, raw", [
    ("YADTQ_BROKER_PROFILE", "tansu"),
    ("YADTQ_PARTITIONS", "0"),
    ("YADTQ_CONCURRENCY", "-1"),
    ("YADTQ_DEFAULT_TIMEOUT", "0"),
    ("YADTQ_BROKER_URL", "http://127.0.0.1:9092"),
])
def test_invalid_values_raise(var: str, raw: str) -> None:
    with pytest.raises(ConfigurationError):
        Settings.from_env({var: raw})


@pytest.mark.parametrize("var, raw", [("YADTQ_PARTITIONS", "0"), ("YADTQ_BROKER_PROFILE", "tansu"),
                                      ("YADTQ_FETCH_MAX_WAIT_MS", "-1"), ("YADTQ_BUSY_FETCH_MAX_WAIT_MS", "-5"),
                                      ("YADTQ_MAX_RESULT_BYTES", "0"), ("YADTQ_MAX_MESSAGE_BYTES", "900000"),
                                      ("YADTQ_MAX_NESTING", "0"), ("YADTQ_MAX_NESTING", "501"),
                                      ("YADTQ_HTTP_IDLE_TIMEOUT", "0"), ("YADTQ_HTTP_READ_TIMEOUT", "-1"),
                                      ("YADTQ_MAX_FORWARDED_LONG_POLLS", "0"), ("YADTQ_GC_THRESHOLD", "0"),
                                      ("YADTQ_GC_THRESHOLD", "99"), ("YADTQ_GC_THRESHOLD", "1000001")])
def test_invalid_values_name_the_variable(var: str, raw: str) -> None:
    with pytest.raises(ConfigurationError, match=var):
        Settings.from_env({var: raw})


@pytest.mark.parametrize("kwargs", [
    {"broker_profile": "tansu"}, {"partitions": 0}, {"concurrency": 0}, {"default_timeout": -1},
    {"broker_url": "127.0.0.1:9092"},
])
def test_constructor_validation(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ConfigurationError):
        Settings(**kwargs)


@pytest.mark.parametrize("url, profile", [
    ("kafka://127.0.0.1:9092", "embedded"),
    ("kafka://localhost:9092", "embedded"),
    ("kafka://127.0.0.5:19092", "embedded"),
    ("kafka://[::1]:9092", "embedded"),
    ("kafka://localhost:9092,127.0.0.1:9093", "embedded"),
    ("kafka://kafka-1:9092", "kafka"),
    ("kafka://10.0.0.5:9092", "kafka"),
    ("kafka://localhost:9092,kafka-1:9092", "kafka"),
])
def test_auto_profile(url: str, profile: str) -> None:
    assert Settings(broker_url=url).resolved_profile == profile


def test_explicit_profile_wins() -> None:
    assert Settings(broker_url="kafka://127.0.0.1:9092", broker_profile="kafka").resolved_profile == "kafka"
    assert Settings(broker_url="kafka://kafka-1:9092", broker_profile="embedded").resolved_profile == "embedded"


@pytest.mark.parametrize("url, hosts", [
    ("kafka://127.0.0.1:9092", [("127.0.0.1", 9092)]),
    ("kafka://a:1,b:2, c:3", [("a", 1), ("b", 2), ("c", 3)]),
    ("kafka://a:1;b:2", [("a", 1), ("b", 2)]),
    ("kafka://kafka-1", [("kafka-1", 9092)]),
    ("kafka://[::1]:9093", [("::1", 9093)]),
    ("kafka://a:1,,", [("a", 1)]),
])
def test_broker_hosts(url: str, hosts: list[tuple[str, int]]) -> None:
    s = Settings(broker_url=url)
    assert s.broker_hosts == hosts
    assert s.bootstrap_servers == ",".join(f"{h}:{p}" for h, p in hosts)


def test_resolved_data_dir() -> None:
    assert Settings(web_port=6067).resolved_data_dir == ".yadtq/worker-6067"
    assert Settings.from_env({"YADTQ_WEB_PORT": "7001"}).resolved_data_dir == ".yadtq/worker-7001"
    assert Settings(web_port=6067, data_dir="/var/x").resolved_data_dir == "/var/x"


def test_replace_returns_validated_copy() -> None:
    s = Settings()
    t = s.replace(partitions=2)
    assert t.partitions == 2 and s.partitions == 8
    with pytest.raises(ConfigurationError):
        s.replace(partitions=0)


def test_every_table_store_bounds_rocksdb_memory() -> None:
    from yadtq_app.application import app
    from yadtq_app.tables.task_status import task_status

    assert Settings(rocksdb_write_buffer_mb=2, rocksdb_block_cache_mb=16).store_options == {
        "write_buffer_size": 2 * 2**20, "max_write_buffer_number": 2, "block_cache_size": 16 * 2**20}
    for table in [task_status, *app.tables.values()]:
        store = table.data
        assert store.rocksdb_options.write_buffer_size == app.settings.store_options["write_buffer_size"], table
        assert store.rocksdb_options.block_cache_size == app.settings.store_options["block_cache_size"], table
        assert store.rocksdb_options.max_write_buffer_number == 2


def test_rocksdb_memory_must_be_positive() -> None:
    with pytest.raises(ConfigurationError, match="YADTQ_ROCKSDB_BLOCK_CACHE_MB"):
        Settings(rocksdb_block_cache_mb=0)


def test_message_and_result_limits_leave_a_status_row_under_the_record_limit() -> None:
    s = Settings()
    assert s.max_message_bytes + s.max_result_bytes + 64 * 1024 <= s.record_limit < 1_000_000
    Settings(max_message_bytes=600_000, max_result_bytes=300_000)  # just fits
    with pytest.raises(ConfigurationError, match="record limit"):
        Settings(max_message_bytes=600_000, max_result_bytes=400_000)
