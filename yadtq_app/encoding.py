"""Byte-level helpers for records on Kafka: a key's partition, UTF-8 checks, raw samples."""

import base64
import hashlib
import json
import struct
from typing import Any, Optional

__all__ = ["compact_json", "murmur2", "partition_of", "is_utf8", "raw_sample", "RAW_SAMPLE_BYTES"]

#: ``json.dumps(value, separators=(",", ":"))`` as one encoder: ``json.dumps`` with any
#: option builds a new ``JSONEncoder`` for every call, as long as encoding a task message.
_COMPACT = json.JSONEncoder(separators=(",", ":"))

#: murmur2's mixing constant (the Java client's ``Utils.murmur2``).
_M = 0x5BD1E995
_MASK = 0xFFFFFFFF

#: How much of a bad record a dead letter keeps (bytes, before base64).
RAW_SAMPLE_BYTES = 4096


def compact_json(value: Any) -> bytes:
    """``value`` as JSON without spaces (``json.dumps`` with ``separators=(",", ":")``),
    UTF-8. Raises what ``json.dumps`` raises."""
    return _COMPACT.encode(value).encode()


def murmur2(data: bytes) -> int:
    """The Java client's murmur2 hash of ``data`` (unsigned 32 bits), as aiokafka's
    ``aiokafka.partitioner.murmur2`` computes it, in half the time: the 4-byte words
    unpacked at once rather than byte by byte."""
    length = len(data)
    h = 0x9747B28C ^ length
    words = length >> 2
    for k in struct.unpack_from(f"<{words}I", data):
        k = (k * _M) & _MASK
        k = ((k ^ (k >> 24)) * _M) & _MASK
        h = ((h * _M) & _MASK) ^ k
    extra = length & 3
    if extra:
        tail = data[words * 4:]
        if extra == 3:
            h ^= tail[2] << 16
        if extra >= 2:
            h ^= tail[1] << 8
        h = ((h ^ tail[0]) * _M) & _MASK
    h ^= h >> 13
    h = (h * _M) & _MASK
    return h ^ (h >> 15)


def partition_of(key: bytes, partitions: int) -> int:
    """The partition a record keyed ``key`` belongs in: the Java client's default
    partitioner (murmur2), which yadtq's producer and Faust's router use too."""
    return (murmur2(key) & 0x7FFFFFFF) % partitions


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

