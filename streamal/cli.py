"""The ``streamal`` command: ``serve``, ``demo`` and ``bench``.

Service flags are derived from :class:`~streamal.config.Settings`, so every ``STREAMAL_<NAME>``
environment variable is also ``--<name>`` on the command line (flags win).
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
import types
import typing
from collections.abc import Sequence
from typing import Any

from pydantic import ValidationError

from streamal import __version__
from streamal.config import Settings

__all__ = ["add_settings_arguments", "describe_invalid", "main", "settings_from_args"]

#: Subcommands implemented in their own modules: each has ``configure(parser)`` and
#: ``run(args, settings) -> int``.
COMMANDS = {
    "serve": ("streamal.serve", "Run the service: Kafka loops, HTTP API and /metrics."),
    "demo": ("streamal.demo", "Run the whole system on one machine with a simulated reviewer."),
    "bench": ("streamal.bench", "Measure end-to-end throughput against a bare Kafka relay."),
    "evaluate": (
        "streamal.evaluate",
        "Offline prequential evaluation of a strategy on a labelled stream.",
    ),
    "simulate": (
        "streamal.simulate",
        "Generate card transactions with fraud scenarios, to Kafka or a file.",
    ),
}


def _is_bool(annotation: Any) -> bool:
    return annotation is bool


def _is_list(annotation: Any) -> bool:
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        return any(_is_list(arg) for arg in typing.get_args(annotation))
    if origin is typing.Annotated:
        return _is_list(typing.get_args(annotation)[0])
    return origin is list


def add_settings_arguments(parser: argparse.ArgumentParser) -> None:
    """Add one ``--flag`` per setting, documented with its env variable and default."""
    group = parser.add_argument_group("service settings (each also STREAMAL_<NAME>)")
    for name, field in Settings.model_fields.items():
        flag = "--" + name.replace("_", "-")
        default = field.get_default(call_default_factory=True)
        if isinstance(default, list):
            default = ",".join(map(str, default)) or "(none)"
        env = "STREAMAL_" + name.upper()
        text = f"{field.description or ''} [env {env}; default {default}]".replace("%", "%%")
        literal = (
            typing.get_args(field.annotation)
            if typing.get_origin(field.annotation) is typing.Literal
            else None
        )
        if _is_bool(field.annotation):
            group.add_argument(
                flag, action=argparse.BooleanOptionalAction, default=argparse.SUPPRESS, help=text
            )
        elif literal:
            group.add_argument(flag, choices=literal, default=argparse.SUPPRESS, help=text)
        else:
            metavar = "A,B,..." if _is_list(field.annotation) else name.upper()
            group.add_argument(flag, default=argparse.SUPPRESS, metavar=metavar, help=text)


def describe_invalid(exc: ValidationError) -> str:
    """Pydantic's report on one line, each bad setting named by its flag and its variable.

    The report itself spans four lines per setting, ends in a URL and names only the field, so
    the person who set ``STREAMAL_BUDGET_WINDOW=5`` in a manifest had to translate it back.
    """
    parts = []
    for error in exc.errors():
        name = str(error["loc"][0]) if error["loc"] else ""
        if name not in Settings.model_fields:  # settings that do not fit together: the message
            parts.append(error["msg"])  # names them, and the input (every setting) stays out
            continue
        where = f"--{name.replace('_', '-')} / STREAMAL_{name.upper()}"
        parts.append(f"{where}: {error['msg']} (got {error['input']!r:.60})")
    return "; ".join(parts)


def settings_from_args(args: argparse.Namespace) -> Settings:
    """Settings from the environment, overridden by the flags that were given."""
    given = {k: v for k, v in vars(args).items() if k in Settings.model_fields}
    return Settings(**given)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="streamal",
        description="Streaming, online active learning for fraud review.",
    )
    parser.add_argument("--version", action="version", version=f"streamal {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (module, help_text) in COMMANDS.items():
        command = sub.add_parser(name, help=help_text, description=help_text)
        importlib.import_module(module).configure(command)
        add_settings_arguments(command)
    return parser


def configure_logging(level: str) -> None:
    """Log at ``level``; kafka-python only from WARNING (or ``level``, if higher) unless debug.

    kafka-python narrates every connection and group join at INFO (hundreds of lines in one
    bench run), which buries what streamal says; its warnings and errors still show. Its level
    is set on its own logger, where the root's level no longer filters, so at ``error`` it must
    be ERROR too, or every reconnect warning of a broker outage would show.
    """
    logging.basicConfig(
        level=level.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s"
    )
    quiet = max(logging.WARNING, logging.getLevelName(level.upper()))
    logging.getLogger("kafka").setLevel(logging.NOTSET if level == "debug" else quiet)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        settings = settings_from_args(args)
    except ValidationError as exc:
        parser.error(describe_invalid(exc))
    configure_logging(settings.log_level)
    module = importlib.import_module(COMMANDS[args.command][0])
    result: int = module.run(args, settings)
    return result


if __name__ == "__main__":
    sys.exit(main())
