"""Access control and body limits of the HTTP API (no broker needed for these paths)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator

import httpx
import pytest
from kafka.errors import KafkaTimeoutError

from streamal.adapters.http import create_app
from streamal.config import Settings
from streamal.service import Service


def _call(app: object, method: str, path: str, **kwargs: object) -> httpx.Response:
    async def go() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)  # type: ignore[arg-type]
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            return await client.request(method, path, **kwargs)  # type: ignore[arg-type]

    return asyncio.run(go())


@pytest.fixture
def app() -> Iterator[object]:
    settings = Settings(api_token="s3cret", max_request_bytes=2048)
    yield create_app(Service(settings), manage_lifecycle=False)


def test_mutating_endpoints_need_the_token(app: object) -> None:
    for method, path, body in (
        ("PUT", "/v1/budget", {"fraction": 0.05}),
        ("POST", "/v1/labels", {"event_id": "e1", "label": True}),
    ):
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "s3cret"}):
            response = _call(app, method, path, json=body, headers=headers)
            assert response.status_code == 401, (method, path, headers)
            assert response.headers["www-authenticate"] == "Bearer"
            assert "bearer token" in response.json()["detail"]


def test_the_right_token_passes(app: object) -> None:
    response = _call(
        app,
        "PUT",
        "/v1/budget",
        json={"fraction": 0.05},
        headers={"Authorization": "Bearer s3cret"},
    )
    assert response.status_code == 200
    assert response.json()["fraction"] == 0.05


def test_reading_needs_no_token(app: object) -> None:
    assert _call(app, "GET", "/v1/budget").status_code == 200
    assert _call(app, "GET", "/v1/model").status_code == 200
    assert _call(app, "GET", "/metrics").status_code == 200


def test_large_bodies_are_refused_declared_or_streamed(app: object) -> None:
    headers = {"Authorization": "Bearer s3cret", "Content-Type": "application/json"}
    big = b'{"fraction": 0.05, "pad": "' + b"x" * 4096 + b'"}'
    response = _call(app, "PUT", "/v1/budget", content=big, headers=headers)
    assert response.status_code == 413
    assert response.json()["error"] == "request_too_large"

    async def chunks():  # no content-length: the limit is enforced while reading
        for _ in range(8):
            yield b"x" * 1024

    response = _call(app, "PUT", "/v1/budget", content=chunks(), headers=headers)
    assert response.status_code == 413


def test_without_a_token_everything_is_open() -> None:
    app = create_app(Service(Settings()), manage_lifecycle=False)
    response = _call(app, "PUT", "/v1/budget", json={"fraction": 0.03})
    assert response.status_code == 200


def test_model_shows_the_class_mix_and_its_weights() -> None:
    service = Service(Settings(class_balance=0.5))
    for label in [False] * 6 + [True] * 2:
        service.learner.class_balance.learn_one(label)
    body = _call(create_app(service, manage_lifecycle=False), "GET", "/v1/model").json()
    balance = body["class_balance"]
    assert balance["power"] == 0.5
    assert balance["labels"] == {"false": 6, "true": 2}
    # 8 labels, 2 classes: (8 / (2 * 2)) ** 0.5 and (8 / (2 * 6)) ** 0.5
    assert balance["weights"]["true"] == pytest.approx(2**0.5)
    assert balance["weights"]["false"] == pytest.approx((2 / 3) ** 0.5)


@pytest.mark.parametrize(
    "body",
    [
        {"event_id": True, "label": True},  # would label event "1"
        {"event_id": 1.0, "label": True},  # likewise
        {"event_id": "e1", "label": 1.0},  # the labels topic calls this an unknown class
        {"event_id": "e1", "label": True, "labelled_at": True},  # would be 1970
    ],
    ids=["id-bool", "id-float", "label-float", "time-bool"],
)
def test_labels_of_the_wrong_type_are_refused_not_coerced(
    monkeypatch: pytest.MonkeyPatch, body: dict[str, object]
) -> None:
    """What the labels topic refuses, POST /v1/labels must not coerce into another event or class.

    The broker is never reached here: ``submit_label`` records what would have been written.
    """
    service = Service(Settings())
    submitted: list[object] = []

    def record(label: object) -> dict[str, object]:
        submitted.append(label)
        return {"topic": "labels", "partition": 0, "offset": 0}

    monkeypatch.setattr(service, "submit_label", record)
    app = create_app(service, manage_lifecycle=False)
    response = _call(app, "POST", "/v1/labels", json=body)
    assert response.status_code == 422, response.text
    assert response.json()["error"] == "invalid request body"
    assert submitted == []


@pytest.mark.parametrize("fraction", [True, "0.5", None])
def test_budget_of_the_wrong_type_is_refused(fraction: object) -> None:
    """``{"fraction": true}`` is not 100 % of the stream sent to review."""
    service = Service(Settings(budget=0.02))
    app = create_app(service, manage_lifecycle=False)
    response = _call(app, "PUT", "/v1/budget", json={"fraction": fraction})
    assert response.status_code == 422, response.text
    assert response.json()["error"] == "invalid request body"
    assert service.learner.gate.budget.fraction == 0.02
    assert service.metrics.registry.get_sample_value("streamal_label_budget_ratio") == 0.02


def test_refused_labels_are_counted_as_invalid() -> None:
    """A label the API refuses counts in streamal_labels_total{outcome="invalid"}, as one refused
    on the labels topic does: the StreamalNoLabels runbook reads invalid labels from the API too.
    """
    service = Service(Settings(api_token="s3cret"))
    app = create_app(service, manage_lifecycle=False)
    auth = {"Authorization": "Bearer s3cret"}

    def invalid(source: str) -> float | None:
        labels = {"source": source, "outcome": "invalid"}
        return service.metrics.registry.get_sample_value("streamal_labels_total", labels)

    body = {"event_id": "e1", "label": "maybe", "source": "reviewer"}
    assert _call(app, "POST", "/v1/labels", json=body, headers=auth).status_code == 400
    assert invalid("reviewer") == 1  # the body named its source
    for bad in ({"event_id": "e1"}, {"event_id": "e1", "label": True, "source": ""}):
        assert _call(app, "POST", "/v1/labels", json=bad, headers=auth).status_code == 422
    assert _call(app, "POST", "/v1/labels", content=b"{not json", headers=auth).status_code == 422
    assert invalid("other") == 3  # no valid source to name
    # Neither a refused caller nor a bad budget is a label.
    assert _call(app, "POST", "/v1/labels", json=body).status_code == 401
    assert _call(app, "PUT", "/v1/budget", json={"fraction": 2}, headers=auth).status_code == 422
    assert (invalid("reviewer"), invalid("other")) == (1, 3)


def test_budget_changes_wait_for_the_step_in_progress() -> None:
    """PUT /v1/budget changes the gate under the model's lock, as scoring, learning and the
    checkpoint do, so none of them sees a gate half-way through the change."""
    service = Service(Settings(budget=0.02))
    app = create_app(service, manage_lifecycle=False)
    answered = threading.Event()

    def put() -> None:
        _call(app, "PUT", "/v1/budget", json={"fraction": 0.05})
        answered.set()

    with service.learner.model.lock:  # a scoring step (or a checkpoint) in progress
        thread = threading.Thread(target=put)
        thread.start()
        assert not answered.wait(1.0), "the budget changed in the middle of a step"
        assert service.learner.gate.budget.fraction == 0.02
    thread.join(10)
    assert answered.is_set()
    assert service.learner.gate.budget.fraction == 0.05


def test_probes_answer_while_label_posts_wait_for_the_broker(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """In a broker outage every POST /v1/labels blocks a worker thread until the producer gives
    up (up to 30 s). The probes must not queue behind them for a thread, or the kubelet would
    restart every replica for an outage that /livez is specified to ignore."""
    service = Service(Settings())
    release = threading.Event()

    def stuck(label: object) -> dict[str, object]:  # a producer waiting for the broker
        release.wait(30)
        raise KafkaTimeoutError("broker down")

    monkeypatch.setattr(service, "submit_label", stuck)
    monkeypatch.setattr(service, "alive", lambda: True)
    app = create_app(service, manage_lifecycle=False)

    async def go() -> tuple[int, ...]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            label = {"event_id": "e1", "label": True}
            posts = [asyncio.create_task(client.post("/v1/labels", json=label)) for _ in range(64)]
            await asyncio.sleep(0.5)  # every worker thread taken
            try:
                answers = [
                    await asyncio.wait_for(client.get(path), 5)
                    for path in ("/livez", "/readyz", "/metrics")
                ]
            finally:
                release.set()
                await asyncio.gather(*posts)
            return tuple(a.status_code for a in answers)

    # Not ready: the service was never started. /metrics: an outage is when it is needed most.
    assert asyncio.run(go()) == (200, 503, 200)


@pytest.mark.parametrize("scheme", ["bearer", "BEARER"])
def test_the_auth_scheme_is_case_insensitive(app: object, scheme: str) -> None:
    """RFC 7235: the scheme is case-insensitive (some HTTP clients send ``bearer``)."""
    headers = {"Authorization": f"{scheme} s3cret"}
    response = _call(app, "PUT", "/v1/budget", json={"fraction": 0.05}, headers=headers)
    assert response.status_code == 200, response.text
    wrong = {"Authorization": f"{scheme} S3CRET"}  # the token itself is exact
    assert (
        _call(app, "PUT", "/v1/budget", json={"fraction": 0.05}, headers=wrong).status_code == 401
    )
