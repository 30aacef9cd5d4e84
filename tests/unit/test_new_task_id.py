"""The ids a worker gives submissions without one: version 4 UUIDs, as ``uuid.uuid4().hex``."""

from __future__ import annotations

import uuid

from yadtq_app.wire import new_task_id


def test_a_new_id_is_a_version_4_uuid_in_hex() -> None:
    ids = [new_task_id() for _ in range(2000)]
    assert len(set(ids)) == len(ids)
    for task_id in ids:
        parsed = uuid.UUID(hex=task_id)
        assert (parsed.version, parsed.variant) == (4, uuid.RFC_4122)
        assert parsed.hex == task_id
    # Every one of the 122 random bits varies across the ids.
    seen_one = 0
    seen_zero = 0
    for task_id in ids:
        n = int(task_id, 16)
        seen_one |= n
        seen_zero |= ~n
    fixed = (0xF << 76) | (0x3 << 62)
    assert (seen_one & seen_zero) & ((1 << 128) - 1) == ((1 << 128) - 1) & ~fixed
