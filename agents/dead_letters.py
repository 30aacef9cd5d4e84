"""``record_dead_letters``: the one writer of the ``dead-letters`` table."""

from __future__ import annotations

import logging
from typing import AsyncIterable

from yadtq_app.application import app
from yadtq_app.records import DeadLetter
from yadtq_app.tables.dead_letters import dead_letters
from yadtq_app.topics import dead_letter_topic

logger = logging.getLogger(__name__)


@app.agent(dead_letter_topic, name="yadtq.record_dead_letters")
async def record_dead_letters(stream: AsyncIterable[DeadLetter]) -> None:
    """Keep each dead letter, by id, for ``GET /dead-letters``."""
    async for letter in stream:
        try:
            dead_letters[letter.id] = letter
        except Exception:  # one bad record must not stop the partition
            logger.exception("could not record dead letter %r", letter)
