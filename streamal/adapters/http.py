"""The HTTP face of the service: probes, metrics and the ``/v1`` API, on FastAPI.

FastAPI's lifespan starts and stops the service's loops, so one ``uvicorn`` process runs all of
streamal. Every bad request gets a 4xx with a message that says what is wrong; never a 500.
"""

from __future__ import annotations

import hmac
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import anyio.to_thread
from fastapi import Depends, FastAPI, Header, HTTPException, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from kafka.errors import KafkaError
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel, Field, StrictBool, StrictFloat, StrictInt, StrictStr
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from streamal import __version__
from streamal.core.messages import ClassSet, InvalidMessage, to_iso
from streamal.service import Service

__all__ = ["create_app"]


class LabelIn(BaseModel):
    """A label for one event, as a reviewer tool or a chargeback feed sends it.

    Strict types: lax coercion would turn ``"event_id": true`` into event "1" and ``"label": 1.0``
    into a class, where the labels topic refuses both; the API must not accept more than it does.
    """

    event_id: StrictStr | StrictInt = Field(description="Id of the labelled transaction.")
    label: StrictBool | StrictInt | StrictStr = Field(
        description="Class: true/false (or 1/0) unless configured."
    )
    source: StrictStr = Field("api", min_length=1, max_length=32, description="Who labelled it.")
    labelled_at: StrictFloat | StrictInt | StrictStr | None = Field(
        None, description="Epoch seconds or ISO-8601."
    )
    event: dict[str, Any] | None = Field(
        None, description="The transaction itself, to learn a label that was never requested."
    )


class BudgetIn(BaseModel):
    """A new budget; strict, because lax parsing read ``true`` as 1.0 (every event to review)."""

    fraction: float = Field(
        gt=0.0, le=1.0, strict=True, description="Share of events sent to review."
    )


class _TooLarge(BaseException):  # noqa: N818
    """Raised from ``receive`` when a body grows past the limit.

    A BaseException, because FastAPI turns any Exception raised while reading a body into a 400
    about parsing; this one must reach :class:`BodyLimit` to become a 413.
    """


class BodyLimit:
    """Refuse request bodies over ``max_bytes`` with 413, declared or streamed (pure ASGI)."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.max_bytes
        too_large = JSONResponse(
            {
                "error": "request_too_large",
                "detail": f"request bodies are limited to {limit} bytes",
            },
            status_code=413,
        )
        declared = dict(scope.get("headers", [])).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await too_large(scope, receive, send)
            return
        received = 0
        started = False

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise _TooLarge
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except _TooLarge:
            if not started:
                await too_large(scope, receive, send)


def create_app(service: Service, manage_lifecycle: bool = True) -> FastAPI:
    """Build the app around ``service``; with ``manage_lifecycle`` the app starts/stops it."""

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        if manage_lifecycle:
            service.start()
        try:
            yield
        finally:
            if manage_lifecycle:
                await run_in_threadpool(service.stop)

    app = FastAPI(title="streamal", version=__version__, lifespan=lifespan)
    app.add_middleware(BodyLimit, max_bytes=service.settings.max_request_bytes)
    token = service.settings.api_token
    expected = token.get_secret_value().encode() if token else None

    def authorized(authorization: str | None = Header(None)) -> None:
        """Mutating endpoints need the bearer token when one is configured."""
        if expected is None:
            return
        scheme, _, given = (authorization or "").partition(" ")
        # The token in constant time; the scheme is case-insensitive (RFC 7235).
        if not hmac.compare_digest(given.encode(), expected) or scheme.lower() != "bearer":
            raise HTTPException(
                status_code=401,
                detail="a valid bearer token is required",
                headers={"WWW-Authenticate": "Bearer"},
            )

    @app.exception_handler(RequestValidationError)
    async def _invalid_body(request: Request, exc: RequestValidationError) -> JSONResponse:
        route = getattr(request.scope.get("route"), "path", None)
        if request.method == "POST" and route == "/v1/labels":
            # A refused label is bad input like one refused on the labels topic: counted.
            service.metrics.count_label("other", "invalid")
        errors = [
            {"loc": list(e.get("loc", ())), "msg": str(e.get("msg", "")), "type": e.get("type")}
            for e in exc.errors()
        ]
        return JSONResponse({"error": "invalid request body", "detail": errors}, status_code=422)

    # The probes only read flags, so they run on the event loop: as plain ``def`` they would
    # wait for a worker thread, and label posts blocked on a broker outage can hold them all.
    @app.get("/livez")
    async def livez() -> JSONResponse:
        alive = service.alive()
        return JSONResponse({"alive": alive}, status_code=200 if alive else 503)

    @app.get("/readyz")
    async def readyz() -> JSONResponse:
        checks = service.ready()
        return JSONResponse(checks, status_code=200 if checks["ready"] else 503)

    # A scrape ranks the fraud windows (tens of ms: not on the event loop), in threads of its
    # own, so that label posts stuck on a broker outage cannot hold every worker it would need.
    scrapes = anyio.CapacityLimiter(2)

    @app.get("/metrics")
    async def metrics() -> Response:
        registry = service.metrics.registry
        text = await anyio.to_thread.run_sync(generate_latest, registry, limiter=scrapes)
        return Response(text, media_type=CONTENT_TYPE_LATEST)

    @app.post("/v1/labels", status_code=202, dependencies=[Depends(authorized)])
    def post_label(body: LabelIn) -> JSONResponse:
        try:
            written = service.submit_label(body.model_dump(exclude_none=True))
        except InvalidMessage as exc:
            service.metrics.count_label(body.source, "invalid")
            return JSONResponse({"error": exc.reason, "detail": exc.detail}, status_code=400)
        except KafkaError as exc:
            return JSONResponse(
                {"error": "broker_unavailable", "detail": type(exc).__name__}, status_code=503
            )
        return JSONResponse({"status": "accepted", **written}, status_code=202)

    @app.get("/v1/reviews")
    def reviews(limit: int = Query(100, ge=1, le=10_000)) -> dict[str, Any]:
        items = service.learner.pending.snapshot(limit)
        return {
            "open": len(service.learner.pending),
            "items": [
                {
                    "event_id": item.event_id,
                    "reason": item.reason,
                    "query_probability": item.probability,
                    "probabilities": {ClassSet.name(c): p for c, p in item.proba.items()},
                    "predicted": ClassSet.name(item.predicted),
                    "model_version": item.model_version,
                    "requested_at": to_iso(item.requested_at),
                }
                for item in items
            ],
        }

    @app.get("/v1/model")
    def model() -> dict[str, Any]:
        return service.model_info()

    def _budget() -> dict[str, Any]:
        gate = service.learner.gate
        return {
            "fraction": gate.budget.fraction,
            "spend_ratio": gate.budget.spend_ratio,
            "window": service.settings.budget_window,
            "threshold": gate.threshold,
            "random_share": gate.random_share,
            "measure": gate.measure_name,
        }

    @app.get("/v1/budget")
    def get_budget() -> dict[str, Any]:
        return _budget()

    @app.put("/v1/budget", dependencies=[Depends(authorized)])
    def put_budget(body: BudgetIn) -> dict[str, Any]:
        # Under the model's lock, which every scoring step, label and checkpoint holds: the gate
        # replaces its lane budgets one by one, and nothing may see (or save) it half-changed.
        with service.learner.model.lock:
            service.learner.gate.set_budget(body.fraction)
            service.metrics.budget_ratio.set(body.fraction)
            return _budget()

    return app
