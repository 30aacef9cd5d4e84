"""Which task messages may be unread, and the index of the ones read through."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any, Optional

from yadtq_app.backlog import _Index, may_be_unread
from yadtq_app.kafka.commits import ReadOffsets

TP = ("task_queue", 0)


class Gaps:
    def __init__(self, *offsets: int) -> None:
        self.offsets = set(offsets)

    def at(self, offset: int) -> bool:
        return offset in self.offsets


def consumer(*, end: Optional[int], read: Optional[int], committed: Optional[int] = 5, acked: tuple[int, ...] = (),
             handed: tuple[int, ...] = (), gaps: tuple[int, ...] = (), held: bool = False) -> Any:
    reads = ReadOffsets()
    if read is not None:
        if held:
            reads.hold(TP, read)
        else:
            reads[TP] = read
    return SimpleNamespace(highwater=lambda tp: end, _read_offset=reads, _committed_offset={TP: committed},
                           _acked_index={TP: set(acked)}, _gap={TP: Gaps(*gaps)},
                           processing={(TP, o) for o in handed})


def test_nothing_unread_once_every_offset_read_is_acked_or_being_handled() -> None:
    assert not may_be_unread(consumer(end=10, read=9, acked=(5, 6, 8), handed=(7, 9)), TP)
    assert not may_be_unread(consumer(end=10, read=9, committed=10), TP)  # committed through the end
    assert not may_be_unread(consumer(end=10, read=9, acked=(5, 6, 8, 9), gaps=(7,)), TP)  # no record at 7


def test_unread_while_behind_the_end_or_holding_messages_not_taken_up() -> None:
    assert may_be_unread(consumer(end=10, read=7, acked=(5, 6, 7)), TP)  # not fetched yet
    assert may_be_unread(consumer(end=10, read=9, acked=(5, 6, 8), handed=(7,)), TP)  # 9 waits in the buffer
    assert may_be_unread(consumer(end=10, read=9, acked=(5, 6, 7, 8, 9), held=True), TP)  # seeked back


def test_unknown_positions_count_as_unread() -> None:
    assert may_be_unread(consumer(end=None, read=9), TP)
    assert may_be_unread(consumer(end=10, read=None), TP)
    assert may_be_unread(consumer(end=10, read=9, committed=None), TP)


def test_the_index_forgets_what_falls_below_the_committed_offset() -> None:
    index = _Index()
    for offset, key in enumerate([b"a", b"b", b"a", b"c"]):
        index.add(key, offset)
    index.next_offset = 4
    assert index.offsets == {b"a": 2, b"b": 1, b"c": 3}  # a key written twice: its latest
    index.drop_below(2)
    assert index.offsets == {b"a": 2, b"c": 3}
    index.drop_below(3)
    assert index.offsets == {b"c": 3}
    index.drop_below(6)  # committed past what was read: read on from there
    assert index.offsets == {} and index.next_offset == 6


class FakeConsumer:
    """One partition's records ``(key, offset)``, fetched ``per_fetch`` at a time."""

    def __init__(self, records: list[tuple[bytes, int]], per_fetch: int) -> None:
        self.records = records
        self.per_fetch = per_fetch
        self.pos = 0
        self.fetches = 0

    def seek(self, tp: Any, offset: int) -> None:
        self.pos = offset

    async def getmany(self, tp: Any, timeout_ms: int, max_records: int) -> dict[Any, list[Any]]:
        self.fetches += 1
        got = [SimpleNamespace(key=k, offset=o, value=b"{}") for k, o in self.records if o >= self.pos][:self.per_fetch]
        if got:
            self.pos = got[-1].offset + 1
        return {tp: got} if got else {}

    async def position(self, tp: Any) -> int:
        return self.pos

    def highwater(self, tp: Any) -> int:
        return len(self.records)


def test_a_backlog_too_deep_to_index_never_answers_none_from_a_partial_index(monkeypatch: Any) -> None:
    import asyncio

    import pytest

    from yadtq_app import backlog
    from yadtq_app.backlog import Backlog, BacklogUnreadable

    monkeypatch.setattr(backlog, "MAX_INDEXED", 3)
    fake = FakeConsumer([(f"k{i}".encode(), i) for i in range(10)], per_fetch=2)
    settings = SimpleNamespace(max_message_bytes=1000, max_nesting=10)
    looker = Backlog(settings, "task_queue")  # type: ignore[arg-type]

    async def fake_consumer() -> Any:
        fake.stop = _noop  # type: ignore[attr-defined]
        return fake

    async def _noop() -> None:
        return None

    fake.assign = lambda tps: None  # type: ignore[attr-defined]
    fake.pause = lambda *tps: None  # type: ignore[attr-defined]
    monkeypatch.setattr(looker, "_consumer", fake_consumer)

    async def look() -> Any:
        return await looker.find(0, ["k9"], 0)

    for _ in range(2):  # asked again at once: still not known, not "none"
        with pytest.raises(BacklogUnreadable):
            asyncio.run(look())


def test_looks_share_one_consumer_that_fetches_nothing_between_them(monkeypatch: Any) -> None:
    import asyncio

    from yadtq_app import backlog
    from yadtq_app.backlog import Backlog

    made: list[Any] = []

    class Started(FakeConsumer):
        def __init__(self, **config: Any) -> None:
            super().__init__([(b"k0", 0), (b"k1", 1)], per_fetch=10)
            self.assigned: list[Any] = []
            self.paused: set[Any] = set()
            self.stopped = False
            made.append(self)

        async def start(self) -> None:
            return None

        async def stop(self) -> None:
            self.stopped = True

        def assign(self, tps: list[Any]) -> None:
            self.assigned, self.paused = list(tps), set()  # as aiokafka: a new assignment is not paused

        def pause(self, *tps: Any) -> None:
            self.paused.update(tps)

    monkeypatch.setattr(backlog, "AIOKafkaConsumer", Started)
    monkeypatch.setattr(backlog, "FRESH", 0.0)  # every look reads on
    settings = SimpleNamespace(max_message_bytes=1000, max_nesting=10, bootstrap_servers="127.0.0.1:1")
    monkeypatch.setattr(backlog, "client_options", lambda s: {})
    looker = Backlog(settings, "task_queue")  # type: ignore[arg-type]

    async def looks() -> None:
        for partition in (0, 1, 0):
            await looker.find(partition, ["k1"], 0)
            assert set(made[-1].assigned) == made[-1].paused  # all paused: nothing fetched between looks
        await looker.close()

    asyncio.run(looks())
    assert len(made) == 1 and made[0].stopped
