"""What "caught up" counts: events folded without a hole below them."""

from __future__ import annotations

from yadtq_app.catch_up import FoldedOffsets


def test_an_event_past_a_lost_seek_position_does_not_count_until_the_hole_is_filled() -> None:
    folded = FoldedOffsets()
    # Reading resumed at the committed offset 6; Faust lost 6 and handed 7 on.
    folded.mark(0, 7, awaited=6)
    assert folded.through(0, committed=6) == 6
    # 6 is read again and folded, then 7 again.
    folded.mark(0, 6)
    assert folded.through(0, committed=6) == 7
    folded.mark(0, 7)
    assert folded.through(0, committed=6) == 8


def test_events_in_order_count_and_the_committed_offset_is_a_floor() -> None:
    folded = FoldedOffsets()
    assert folded.through(3, committed=None) == 0
    assert folded.through(3, committed=5) == 5
    for offset in (5, 6, 7):
        folded.mark(3, offset)
    assert folded.through(3, committed=5) == 8
    folded.mark(3, 6)  # read again after a seek back: nothing goes backwards
    assert folded.through(3, committed=5) == 8
    assert folded.through(1, committed=2) == 2  # partitions are apart


def test_an_assignment_forgets_what_was_folded() -> None:
    folded = FoldedOffsets()
    folded.mark(0, 9)
    folded.clear()
    assert folded.through(0, committed=4) == 4
