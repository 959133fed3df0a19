"""``streamal serve``: the service under uvicorn (SIGTERM/SIGINT stop it through the lifespan)."""

from __future__ import annotations

import argparse

import uvicorn

from streamal.adapters.http import create_app
from streamal.config import Settings
from streamal.service import Service


def configure(parser: argparse.ArgumentParser) -> None:
    """``serve`` takes only the service settings."""


def run(args: argparse.Namespace, settings: Settings) -> int:
    if not settings.bootstrap_servers:
        print(
            "streamal serve: set --bootstrap-servers or STREAMAL_BOOTSTRAP_SERVERS "
            "(the embedded broker is for `streamal demo`)"
        )
        return 2
    app = create_app(Service(settings))
    uvicorn.run(
        app,
        host=settings.http_host,
        port=settings.http_port,
        log_level=settings.log_level,
        access_log=False,
    )
    return 0
