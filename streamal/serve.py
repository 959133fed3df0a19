"""``streamal serve``: the service under uvicorn (SIGTERM/SIGINT stop it through the lifespan)."""

from __future__ import annotations

import argparse
import signal
import sys
import threading

import uvicorn

from streamal.adapters.checkpoint import CheckpointError
from streamal.adapters.http import create_app
from streamal.config import Settings
from streamal.service import Service


def configure(parser: argparse.ArgumentParser) -> None:
    """``serve`` takes only the service settings."""


def run(args: argparse.Namespace, settings: Settings) -> int:
    if not settings.bootstrap_servers:
        print(
            "streamal serve: set --bootstrap-servers or STREAMAL_BOOTSTRAP_SERVERS "
            "(the embedded broker is for `streamal demo`)",
            file=sys.stderr,
        )
        return 2
    if settings.heartbeat_interval_ms >= settings.session_timeout_ms:
        # kafka-python refuses it only when the events consumer is built, inside the loop,
        # which would restart every second and never get partitions. (demo and bench lower
        # the heartbeat themselves when only the session timeout is given.)
        print(
            f"streamal serve: STREAMAL_HEARTBEAT_INTERVAL_MS ({settings.heartbeat_interval_ms}) "
            f"must be below STREAMAL_SESSION_TIMEOUT_MS ({settings.session_timeout_ms}); "
            "a third of it is usual",
            file=sys.stderr,
        )
        return 2
    try:
        service = Service(settings)
    except (ValueError, TypeError, CheckpointError) as exc:  # settings that do not fit together
        print(f"streamal serve: {exc}", file=sys.stderr)
        return 2
    try:
        # Before uvicorn, whose failed startup would bury the reason in a traceback.
        service.restore()
    except CheckpointError as exc:  # corrupt, foreign, unreadable: the message says what to do
        print(f"streamal serve: {exc}", file=sys.stderr)
        return 3
    app = create_app(service)
    # uvicorn shuts down gracefully on SIGTERM, then raises the signal again under the handler
    # that was there before it: with the default one, a clean shutdown would still end as
    # "killed by SIGTERM" (status -15). A no-op handler lets it return, and serve exits 0.
    main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, lambda *_: None) if main else None
    try:
        uvicorn.run(
            app,
            host=settings.http_host,
            port=settings.http_port,
            log_level=settings.log_level,
            access_log=False,
        )
    finally:
        if main:
            signal.signal(signal.SIGTERM, previous)
    return 0
