"""The Kafka adapter against the real broker: topics it creates."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from kafka import KafkaAdminClient, KafkaConsumer

from streamal.adapters.kafka import ensure_topics
from streamal.config import Settings

pytestmark = pytest.mark.kafka


def test_created_topics_take_the_clusters_replication_factor(
    kafka_bootstrap: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Topics are created with the cluster's default replication factor (-1, KIP-464), not 1:
    with 1, a single broker's loss loses acknowledged scores, reviews and labels (the producer
    waits for all in-sync replicas for nothing), and clusters that require more replicas
    refuse the request, so the labels loop failed at start again and again. The request is
    watched on its way to the real broker, which creates the topics."""
    asked: list[int] = []
    create = KafkaAdminClient.create_topics

    def watched(self: KafkaAdminClient, new_topics: list[Any], *args: Any, **kwargs: Any) -> Any:
        asked.extend(t.replication_factor for t in new_topics)
        return create(self, new_topics, *args, **kwargs)

    monkeypatch.setattr(KafkaAdminClient, "create_topics", watched)
    names = [f"rf-{uuid.uuid4().hex[:8]}" for _ in range(2)]
    created = ensure_topics(Settings(bootstrap_servers=kafka_bootstrap), names, partitions=2)
    assert created == names
    assert asked == [-1, -1]
    consumer = KafkaConsumer(bootstrap_servers=kafka_bootstrap)
    try:
        assert all(consumer.partitions_for_topic(n) == {0, 1} for n in names)
    finally:
        consumer.close()
