"""Byte-level helpers for records on Kafka: a key's partition, UTF-8 checks, raw samples."""

import base64
import hashlib
from typing import Any, Optional

from aiokafka.partitioner import murmur2

__all__ = ["partition_of", "is_utf8", "raw_sample", "RAW_SAMPLE_BYTES"]

#: How much of a bad record a dead letter keeps (bytes, before base64).
RAW_SAMPLE_BYTES = 4096


def partition_of(key: bytes, partitions: int) -> int:
    """The partition a record keyed ``key`` belongs in: the Java client's default
    partitioner (murmur2), which yadtq's producer and Faust's router use too."""
    return int(murmur2(key) & 0x7FFFFFFF) % partitions


def is_utf8(text: str) -> bool:
    """Whether ``text`` can be sent as UTF-8 (no lone surrogates, which JSON allows)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def raw_sample(raw: Optional[bytes]) -> dict[str, Any]:
    """A dead letter's account of a raw record: its first :data:`RAW_SAMPLE_BYTES`
    (base64), its size and its SHA-256, so any record is accounted for in a letter
    that stays small."""
    if raw is None:
        return {"raw": None, "raw_size": None, "raw_sha256": None, "raw_truncated": False}
    return {"raw": base64.b64encode(raw[:RAW_SAMPLE_BYTES]).decode(), "raw_size": len(raw),
            "raw_sha256": hashlib.sha256(raw).hexdigest(), "raw_truncated": len(raw) > RAW_SAMPLE_BYTES}

