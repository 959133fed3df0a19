"""Fixtures shared by the whole suite.

Integration tests (``@pytest.mark.kafka``) run against a real Kafka-protocol broker, never a
mock: ``KAFKA_BOOTSTRAP_SERVERS`` if set (CI with a real cluster), else Kafka in Docker via
testcontainers, else the embedded tansu broker. One broker serves the whole session; tests
stay apart by using fresh topic names from the ``topics`` fixture.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from streamal.adapters.broker import EmbeddedBroker, docker_available


@pytest.fixture(scope="session")
def kafka_bootstrap() -> Iterator[str]:
    """``host:port`` of the session's broker (started lazily, only if a test needs it)."""
    configured = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if configured:
        yield configured
    elif docker_available():
        from testcontainers.kafka import KafkaContainer

        with KafkaContainer() as container:
            yield str(container.get_bootstrap_server())
    else:
        with EmbeddedBroker() as broker:
            yield broker.bootstrap_servers


@dataclass(frozen=True)
class Topics:
    """Topic names unique to one test, so no test ever reads another's records."""

    transactions: str
    scores: str
    reviews: str
    labels: str
    dead_letter: str


@pytest.fixture
def topics() -> Topics:
    """Fresh topic names (random suffix) for one test."""
    suffix = uuid.uuid4().hex[:8]
    return Topics(
        transactions=f"transactions-{suffix}",
        scores=f"scores-{suffix}",
        reviews=f"reviews-{suffix}",
        labels=f"labels-{suffix}",
        dead_letter=f"dead-letter-{suffix}",
    )
