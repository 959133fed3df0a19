"""The embedded broker is a real Kafka-protocol broker: produce, consume in a group, restart."""

from __future__ import annotations

import socket
import time
import uuid
from collections.abc import Iterator

import pytest
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer
from kafka.serializer import DefaultSerializer, JsonSerializer

from streamal.adapters import broker as broker_module
from streamal.adapters.broker import EmbeddedBroker, docker_available

pytestmark = pytest.mark.kafka


@pytest.fixture
def broker() -> Iterator[EmbeddedBroker]:
    """A private broker, for tests that bounce it (never the shared session broker)."""
    with EmbeddedBroker() as embedded:
        yield embedded


def _list_topics(bootstrap: str) -> list[str]:
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=5000)
    try:
        return list(admin.list_topics())
    finally:
        admin.close()


def test_round_trip_through_a_consumer_group(kafka_bootstrap: str) -> None:
    topic = f"round-trip-{uuid.uuid4().hex[:8]}"
    producer = KafkaProducer(
        bootstrap_servers=kafka_bootstrap,
        # kafka-python 3.0 deprecates plain callables here (a DeprecationWarning = error).
        key_serializer=DefaultSerializer(),
        value_serializer=JsonSerializer(),
    )
    try:
        for i in range(100):
            producer.send(topic, key=f"k{i}", value={"i": i})
        producer.flush(timeout=10)
    finally:
        producer.close()

    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=kafka_bootstrap,
        group_id=f"g-{uuid.uuid4().hex[:8]}",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        session_timeout_ms=2000,
        heartbeat_interval_ms=500,
        key_deserializer=DefaultSerializer(),
        value_deserializer=JsonSerializer(),
    )
    seen: dict[str, int] = {}
    try:
        deadline = time.monotonic() + 20
        while len(seen) < 100 and time.monotonic() < deadline:
            for records in consumer.poll(timeout_ms=500).values():
                for record in records:
                    seen[record.key] = record.value["i"]
        consumer.commit()
    finally:
        consumer.close()
    assert seen == {f"k{i}": i for i in range(100)}


def test_binds_to_loopback_only(broker: EmbeddedBroker) -> None:
    host, port = broker.bootstrap_servers.rsplit(":", 1)
    assert host == "127.0.0.1"
    with socket.create_connection((host, int(port)), timeout=1):
        pass
    assert "127.0.0.1" in broker.log_path.read_text()  # the command line we logged


def test_restart_keeps_the_port(broker: EmbeddedBroker) -> None:
    before = broker.bootstrap_servers
    broker.restart()
    assert broker.bootstrap_servers == before
    assert broker.running
    assert isinstance(_list_topics(broker.bootstrap_servers), list)
    broker.stop()
    broker.stop()  # idempotent
    assert not broker.running


def test_start_retries_when_the_port_is_taken(monkeypatch: pytest.MonkeyPatch) -> None:
    """Picking a free port is racy; a broker that loses the race must try another port."""
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        taken = squatter.getsockname()[1]
        ports = iter([taken])
        real_free_port = broker_module._free_port
        monkeypatch.setattr(broker_module, "_free_port", lambda: next(ports, 0) or real_free_port())
        with EmbeddedBroker() as embedded:
            assert embedded.port != taken
            assert embedded.running


def test_docker_available_is_quick() -> None:
    started = time.monotonic()
    result = docker_available(timeout=2.0)
    assert isinstance(result, bool)
    assert time.monotonic() - started < 3
