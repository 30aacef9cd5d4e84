"""What a worker commits: the rules that keep a commit from passing an unfinished task.

:func:`head_unacked` and :func:`stale_ack` are the two checks the consumer
(:class:`yadtq_app.kafka.consumer.Consumer`) applies on every broker; :class:`ReadOffsets`
keeps a read from before a seek from moving the read offset on. Why each is needed:
``docs/brokers.md``, "Commits".
"""

from __future__ import annotations

from typing import Any, Optional

from faust.types import TP

from . import private

__all__ = ["head_unacked", "stale_ack", "ReadOffsets", "committed_offset", "ack_through_consumer"]


def head_unacked(committed: Optional[int], acked: Any, acked_index: Any, gap: Any) -> bool:
    """Whether the next offset to commit from (``committed``) is still unacked.

    True when something is acked but the message at ``committed`` is neither acked nor
    a known gap (e.g. a transaction marker): the commit must wait for it.
    """
    if committed is None or not acked:
        return False
    return committed not in acked_index and not gap.at(committed)


def stale_ack(message_generation: Optional[int], current_generation: Optional[int]) -> bool:
    """Whether an ack is of a message fetched in an earlier consumer-group generation
    (such an ack must not count towards commits; ``None`` on either side: not stale)."""
    return message_generation is not None and current_generation is not None \
        and message_generation != current_generation


class ReadOffsets(dict):  # type: ignore[type-arg]  # keys and values as Faust's own mapping: untyped
    """Faust's per-partition read offsets, which a read from before a seek cannot move on.

    A partition :meth:`hold` marks keeps its read offset at the seek position until the
    message there is read again; missing partitions read as ``None``.
    """

    def __init__(self) -> None:
        super().__init__()
        self._held: dict[Any, int] = {}

    def __missing__(self, key: Any) -> None:  # Faust's was a defaultdict(lambda: None)
        return None

    def __setitem__(self, tp: Any, offset: Optional[int]) -> None:
        held = self._held.get(tp)
        if held is not None and offset is not None:
            if offset > held:
                return  # read before the seek: the seek's reads deliver it again
            if offset == held:
                del self._held[tp]
        super().__setitem__(tp, offset)

    def pop(self, tp: Any, *default: Any) -> Any:
        self._held.pop(tp, None)
        return super().pop(tp, *default)

    def hold(self, tp: Any, offset: int) -> None:
        """``tp`` was just seeked to ``offset``."""
        super().__setitem__(tp, offset)
        self._held[tp] = offset

    def held(self, tp: Any) -> bool:
        """Whether ``tp`` still waits for the message at its seek position."""
        return tp in self._held


def committed_offset(consumer: Any, tp: TP) -> Optional[int]:
    """The offset ``consumer`` last committed for ``tp``, else where its reading began
    (the floor no commit passes); ``None`` if neither is known yet."""
    committed: Optional[int] = private.committed_offsets(consumer).get(tp)
    if committed is None:
        committed = getattr(consumer, "_yadtq_floor", {}).get(tp)
    return committed


def ack_through_consumer() -> None:
    """Make every stream ack go through ``Consumer.ack``: Faust's compiled stream
    iterator inlines the ack, so yadtq's consumer would never see it."""
    private.disable_compiled_stream_iterator()
