"""Hostile input (hypothesis) against one running service on the real broker.

Random bytes, random JSON and JSON shaped almost like the real thing go to the transactions and
labels topics, each followed by a valid message; random requests (method, path, query, headers,
body, token) go to every HTTP endpoint, each followed by a valid label over HTTP. Throughout:

* the service never stops (both loops alive, ``/livez`` 200) and never answers 5xx;
* every message is counted: the counters of each outcome add up to the records on the topic,
  and every invalid one is on the dead-letter topic;
* the valid messages in between are still processed: every valid transaction scored, every
  valid label learned.

Each example waits until the service has counted it, so a failure shrinks to one input.
"""

from __future__ import annotations

import json
import math
import time
import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from helpers import FreshTopics, http_client, metric_sum, running_service, service_settings
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from kafka import KafkaProducer
from recovery_helpers import predictions, probe_features, read_topic

from streamal.core.synthetic import drifting_transactions
from streamal.service import Service

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

TOKEN = "fuzz-token"
EXAMPLES = 150
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

SCALARS = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=2**63, max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=20)
)
JSON = st.recursive(
    SCALARS,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)
FIELDS = st.sampled_from(
    ["amount", "timestamp", "category", "online", "hour", "event", "label", "source"]
)
#: Objects with an id and plausible field names, so that decoding gets past the first checks.
TXN_LIKE = st.builds(
    lambda eid, extra: {"event_id": eid, **extra},
    SCALARS | st.text(min_size=1, max_size=12),
    st.dictionaries(FIELDS | st.text(max_size=8), JSON, max_size=6),
)
#: Label objects: required fields of any type, optional ones sometimes present (an event too).
LABEL_LIKE = st.fixed_dictionaries(
    {
        "event_id": st.text(min_size=1, max_size=12) | SCALARS,
        "label": st.sampled_from([True, False, 1, 0, "true", "false", "fraud"]) | SCALARS,
    },
    optional={
        "source": st.sampled_from(["reviewer", "chargeback", "", "x" * 40]) | SCALARS,
        "labelled_at": st.sampled_from([1.7e9, "2024-01-01T00:00:00Z", -1e300, "yesterday"])
        | SCALARS,
        "event": TXN_LIKE | JSON,
    },
)
#: Valid-looking events with extreme values: they must not poison the model (inf, NaN).
EXTREME_EVENTS = st.builds(
    lambda eid, amount, hour: {"event_id": eid, "amount": amount, "hour": hour, "online": True},
    st.text(min_size=1, max_size=12),
    st.sampled_from([1e308, -1e308, 2**70, -(2**70), 1e-308, 0]) | st.floats(),
    st.floats(allow_nan=False) | st.integers(),
)


def _dumps(value: Any) -> bytes:
    return json.dumps(value).encode()  # NaN and Infinity come out as the non-standard literals


PAYLOADS = st.one_of(
    st.binary(max_size=400),
    st.text(max_size=200).map(str.encode),
    JSON.map(_dumps),
    TXN_LIKE.map(_dumps),
    LABEL_LIKE.map(_dumps),
    EXTREME_EVENTS.map(_dumps),
    st.builds(
        lambda event, label: {"event_id": event["event_id"], "label": label, "event": event},
        EXTREME_EVENTS,
        st.booleans(),
    ).map(_dumps),
)


@pytest.fixture(scope="module")
def topics() -> FreshTopics:
    return FreshTopics.new()


@pytest.fixture(scope="module")
def service(kafka_bootstrap: str, topics: FreshTopics) -> Iterator[Service]:
    settings = service_settings(
        kafka_bootstrap, topics, budget=0.3, label_wait_seconds=1.0, api_token=TOKEN
    )
    with running_service(settings) as svc:
        yield svc


@pytest.fixture(scope="module")
def client(service: Service) -> Iterator[httpx.Client]:
    with http_client(service) as c:
        yield c


@pytest.fixture(scope="module")
def producer(kafka_bootstrap: str) -> Iterator[KafkaProducer]:
    p = KafkaProducer(bootstrap_servers=kafka_bootstrap, linger_ms=0)
    yield p
    p.close(timeout=10)


def _valid_events(prefix: str) -> Iterator[dict[str, Any]]:
    for i, (event, _) in enumerate(drifting_transactions(100_000, seed=60)):
        yield {**event, "event_id": f"{prefix}-{i}"}


def _counted(service: Service, name: str) -> float:
    return metric_sum(service.metrics.registry, name)


def _wait_counted(service: Service, name: str, expected: int, what: str) -> None:
    """Wait until the service counted ``expected`` messages, staying alive meanwhile."""
    deadline = time.monotonic() + 15
    while _counted(service, name) < expected:
        assert service.alive(), "a loop died"
        assert time.monotonic() < deadline, f"{what}: {_counted(service, name)} of {expected}"
        time.sleep(0.01)
    assert _counted(service, name) == expected, what


def _dead_letters(kafka_bootstrap: str, topic: str, source_topic: str) -> list[dict[str, Any]]:
    return [r for r in read_topic(kafka_bootstrap, topic) if r.get("source_topic") == source_topic]


def test_fuzz_transactions_topic(
    service: Service, producer: KafkaProducer, kafka_bootstrap: str, topics: FreshTopics
) -> None:
    valid = _valid_events(f"fz-{uuid.uuid4().hex[:6]}")
    sent_valid: list[str] = []
    sent = 0

    @FUZZ
    @given(payload=PAYLOADS, key=st.none() | st.binary(max_size=16))
    def fuzz(payload: bytes, key: bytes | None) -> None:
        nonlocal sent
        event = next(valid)
        producer.send(topics.transactions, key=key, value=payload).get(timeout=10)
        producer.send(topics.transactions, value=_dumps(event)).get(timeout=10)
        sent += 2
        sent_valid.append(event["event_id"])
        _wait_counted(service, "streamal_events_total", sent, "transactions counted")

    fuzz()

    registry = service.metrics.registry
    records = read_topic(kafka_bootstrap, topics.transactions)
    invalid = metric_sum(registry, "streamal_events_total", outcome="invalid")
    scored = metric_sum(registry, "streamal_events_total", outcome="scored")
    dead = _dead_letters(kafka_bootstrap, topics.dead_letter, topics.transactions)
    scores = {s.get("event_id") for s in read_topic(kafka_bootstrap, topics.scores)}
    print(
        f"\nfuzz transactions: {len(records)} records, {scored:.0f} scored, {invalid:.0f} "
        f"invalid, {len(dead)} dead-lettered"
    )
    assert service.alive()
    assert scored + invalid == len(records) == sent
    assert invalid > EXAMPLES / 2  # most random input is not a transaction
    assert metric_sum(registry, "streamal_dead_letters_total", input="transactions") == invalid
    assert len(dead) == invalid
    assert len({d["source_offset"] for d in dead}) == len(dead)
    assert set(sent_valid) <= scores


def test_fuzz_labels_topic(
    service: Service, producer: KafkaProducer, kafka_bootstrap: str, topics: FreshTopics
) -> None:
    valid = _valid_events(f"fl-{uuid.uuid4().hex[:6]}")
    registry = service.metrics.registry
    before = len(read_topic(kafka_bootstrap, topics.labels))
    learned_before = metric_sum(registry, "streamal_labels_total", outcome="learned")
    sent = before
    sent_valid = 0

    @FUZZ
    @given(payload=PAYLOADS)
    def fuzz(payload: bytes) -> None:
        nonlocal sent, sent_valid
        event = next(valid)
        label = {"event_id": event["event_id"], "label": True, "source": "reviewer", "event": event}
        producer.send(topics.labels, value=payload).get(timeout=10)
        producer.send(topics.labels, value=_dumps(label)).get(timeout=10)
        sent += 2
        sent_valid += 1
        _wait_counted(service, "streamal_labels_total", sent, "labels counted")

    fuzz()

    records = read_topic(kafka_bootstrap, topics.labels)
    outcomes = {
        o: metric_sum(registry, "streamal_labels_total", outcome=o)
        for o in ("learned", "duplicate", "orphan", "invalid")
    }
    dead = _dead_letters(kafka_bootstrap, topics.dead_letter, topics.labels)
    print(f"\nfuzz labels: {len(records)} records, outcomes {outcomes}, {len(dead)} dead-lettered")
    assert service.alive()
    assert sum(outcomes.values()) == len(records) == sent
    assert outcomes["learned"] - learned_before >= sent_valid
    assert service.learner.model.n_learned == outcomes["learned"]
    assert metric_sum(registry, "streamal_dead_letters_total", input="labels") == len(dead)
    assert len(dead) == outcomes["invalid"] > 0
    # Whatever it learned, the model still gives probabilities (no inf or NaN weights).
    for proba in predictions(service.learner.model, probe_features(50)):
        assert all(math.isfinite(p) and 0.0 <= p <= 1.0 for p in proba.values()), proba


HEADER_TEXT = st.text(
    alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=40
).map(str.strip)
ROUTES = st.sampled_from(
    [
        ("GET", "/livez"),
        ("GET", "/readyz"),
        ("GET", "/metrics"),
        ("POST", "/v1/labels"),
        ("GET", "/v1/reviews"),
        ("GET", "/v1/model"),
        ("GET", "/v1/budget"),
        ("PUT", "/v1/budget"),
    ]
)
METHODS = st.sampled_from(["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"])
PATHS = st.sampled_from(
    ["/livez", "/readyz", "/metrics", "/v1/labels", "/v1/reviews", "/v1/model", "/v1/budget"]
) | st.text(max_size=30).map(lambda s: "/" + quote(s, safe="/%"))
#: Mostly the real routes (so that bodies, queries and tokens reach the handlers), else anything.
REQUEST_LINES = st.one_of(ROUTES, ROUTES, ROUTES, st.tuples(METHODS, PATHS))
QUERY = st.dictionaries(
    st.sampled_from(["limit"]) | st.text(max_size=8),
    st.text(max_size=16) | st.integers().map(str),
    max_size=3,
)
HEADERS = st.dictionaries(
    st.sampled_from(["content-type", "accept", "x-request-id", "content-encoding", "user-agent"])
    | st.from_regex(r"\Ax-[a-z]{1,8}\Z"),
    HEADER_TEXT,
    max_size=3,
)
VALID_AUTH = st.just(f"Bearer {TOKEN}")
AUTH = st.one_of(
    VALID_AUTH,
    VALID_AUTH,
    st.sampled_from([None, "Bearer wrong", TOKEN, "Basic abc", f"bearer {TOKEN}"]) | HEADER_TEXT,
)
BODIES = st.one_of(
    st.none(),
    st.binary(max_size=300),
    JSON.map(_dumps),
    LABEL_LIKE.map(_dumps),
    st.builds(lambda f: _dumps({"fraction": f}), SCALARS),
)


def test_fuzz_http_endpoints(
    service: Service, client: httpx.Client, kafka_bootstrap: str, topics: FreshTopics
) -> None:
    valid = _valid_events(f"fh-{uuid.uuid4().hex[:6]}")
    statuses: dict[int, int] = {}
    valid_ids: list[str] = []
    refused: list[int] = []  # labels the API refused: counted as invalid, never on the topic
    budget = client.get("/v1/budget").json()["fraction"]

    @FUZZ
    @example(  # a body over the size limit (1 MiB by default): refused with 413
        line=("POST", "/v1/labels"), query={}, headers={}, auth=TOKEN, body=b"{" * 2**21
    )
    @given(
        line=REQUEST_LINES,
        query=QUERY,
        headers=HEADERS,
        auth=AUTH,
        body=BODIES,
    )
    def fuzz(
        line: tuple[str, str],
        query: dict[str, str],
        headers: dict[str, str],
        auth: str | None,
        body: bytes | None,
    ) -> None:
        method, path = line
        sent = dict(headers)
        if auth is not None:
            sent["authorization"] = auth
        response = client.request(method, path, params=query, headers=sent, content=body)
        statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
        assert response.status_code < 500, (response.status_code, response.text[:500])
        if (method, path) == ("POST", "/v1/labels") and response.status_code in (400, 422):
            refused.append(response.status_code)
        # A valid request in between still works.
        event = next(valid)
        label = {"event_id": event["event_id"], "label": False, "event": event}
        ok = client.post("/v1/labels", json=label, headers={"authorization": f"Bearer {TOKEN}"})
        assert ok.status_code == 202, ok.text
        valid_ids.append(event["event_id"])

    fuzz()

    assert client.get("/livez").status_code == 200
    assert client.put(
        "/v1/budget", json={"fraction": budget}, headers={"authorization": f"Bearer {TOKEN}"}
    ).is_success
    registry = service.metrics.registry
    records = read_topic(kafka_bootstrap, topics.labels)
    expected = len(records) + len(refused)
    _wait_counted(service, "streamal_labels_total", expected, "HTTP labels counted")
    print(f"\nfuzz HTTP: statuses {dict(sorted(statuses.items()))}")
    learned = metric_sum(registry, "streamal_labels_total", outcome="learned")
    assert service.learner.model.n_learned == learned
    posted = {r["event_id"] for r in records if r.get("source") == "api"}
    assert set(valid_ids) <= posted
