"""Kafka clients for the service: one place that knows how streamal talks to the broker.

Built on kafka-python. Every client gets the same connection and security settings from
:class:`~streamal.config.Settings`; the producer waits for all in-sync replicas (``acks=all``)
because a score or review request that is acknowledged must not be lost.
"""

from __future__ import annotations

import codecs
import time
from collections.abc import Iterable
from typing import Any

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer
from kafka.admin import NewTopic
from kafka.errors import TopicAlreadyExistsError

from streamal.config import Settings
from streamal.core.messages import SCHEMA_VERSION, encode, to_iso

__all__ = [
    "dead_letter_record",
    "ensure_service_topics",
    "ensure_topics",
    "make_consumer",
    "make_producer",
    "service_topics",
]

#: Reconnect attempts back off exponentially up to this. kafka-python's default cap (30 s) kept
#: the service unready for up to 30 s after the broker was back from an outage.
RECONNECT_BACKOFF_MAX_MS = 1000
#: Topics are created with the cluster's default replication factor (KIP-464, Kafka 2.4+): with
#: 1, acks=all would guard acknowledged records with a single copy, and clusters that require
#: more replicas would refuse to create them.
CLUSTER_DEFAULT_REPLICATION = -1


def make_producer(settings: Settings, **overrides: Any) -> KafkaProducer:
    """A producer for scores, reviews, labels and dead letters (bytes in, bytes out)."""
    config: dict[str, Any] = {
        **settings.kafka_client_config(),
        "acks": "all",
        "linger_ms": 5,
        "batch_size": 64 * 1024,
        "max_request_size": max(1_048_576, 4 * settings.max_message_bytes),
        "retries": 2**31 - 1,
        "retry_backoff_ms": 100,
        "request_timeout_ms": 15_000,
        "delivery_timeout_ms": 60_000,
        "reconnect_backoff_max_ms": RECONNECT_BACKOFF_MAX_MS,
    }
    config.update(overrides)
    return KafkaProducer(**config)


def make_consumer(
    settings: Settings, group_id: str | None = None, **overrides: Any
) -> KafkaConsumer:
    """A consumer with auto-commit off: offsets are committed only after output is acknowledged."""
    config: dict[str, Any] = {
        **settings.kafka_client_config(),
        "group_id": group_id,
        "enable_auto_commit": False,
        "auto_offset_reset": "earliest",
        "session_timeout_ms": settings.session_timeout_ms,
        "heartbeat_interval_ms": settings.heartbeat_interval_ms,
        "max_poll_records": 500,
        "fetch_max_bytes": 16 * 1024 * 1024,
        "reconnect_backoff_max_ms": RECONNECT_BACKOFF_MAX_MS,
    }
    config.update(overrides)
    return KafkaConsumer(**config)


def ensure_topics(settings: Settings, names: Iterable[str], partitions: int = 1) -> list[str]:
    """Create the topics that do not exist yet, with the cluster's default replication factor;
    returns those created. Waits until listed."""
    admin = KafkaAdminClient(**settings.kafka_client_config())
    try:
        existing = set(admin.list_topics())
        missing = [n for n in dict.fromkeys(names) if n not in existing]
        created = []
        for name in missing:
            try:
                admin.create_topics([NewTopic(name, partitions, CLUSTER_DEFAULT_REPLICATION)])
                created.append(name)
            except TopicAlreadyExistsError:
                pass
        deadline = time.monotonic() + 10
        while missing and time.monotonic() < deadline:
            if set(missing) <= set(admin.list_topics()):
                break
            time.sleep(0.05)
        return created
    finally:
        admin.close()


def service_topics(settings: Settings) -> list[str]:
    """The five topics the service reads and writes, in the settings' names."""
    s = settings
    return [
        s.topic_transactions,
        s.topic_scores,
        s.topic_reviews,
        s.topic_labels,
        s.topic_dead_letter,
    ]


def ensure_service_topics(settings: Settings) -> list[str]:
    """Create the service's topics that do not exist yet; returns those created.

    The labels topic gets one partition whatever ``topic_partitions`` says: one order of
    labels, so that every replica's model stays the same (see the README's Replicas).
    """
    created = ensure_topics(settings, [settings.topic_labels], 1)
    return created + ensure_topics(settings, service_topics(settings), settings.topic_partitions)


def dead_letter_record(
    raw: bytes | None,
    reason: str,
    detail: str,
    topic: str,
    partition: int | None,
    offset: int | None,
    now: float,
    max_raw_bytes: int = 4096,
) -> bytes:
    """The dead-letter message: the raw input (as text when it is UTF-8), why, and where from.

    Oversize input keeps only its first ``max_raw_bytes`` (with the original size), so a hostile
    1 MB message cannot make the dead-letter topic reject the record about it.
    """
    raw = raw or b""
    body: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "reason": reason,
        "error": detail,
        "source_topic": topic,
        "source_partition": partition,
        "source_offset": offset,
        "size_bytes": len(raw),
        "truncated": len(raw) > max_raw_bytes,
        "at": to_iso(now),
    }
    clipped = raw[:max_raw_bytes]
    try:
        # The clip may cut the last character in two; that half is held back, not called bad.
        decoder = codecs.getincrementaldecoder("utf-8")()
        body["raw_text"] = decoder.decode(clipped, final=len(raw) <= max_raw_bytes)
    except UnicodeDecodeError:
        body["raw_hex"] = clipped.hex()
    return encode(body)
