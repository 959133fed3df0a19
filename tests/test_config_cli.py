"""Settings from STREAMAL_* variables, and the CLI flags derived from the same fields."""

from __future__ import annotations

import argparse
import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import ValidationError

import streamal
from streamal import cli, serve
from streamal.config import Settings


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No STREAMAL_* variable of the caller's shell leaks into these tests; wide help text."""
    for name in list(os.environ):
        if name.startswith("STREAMAL_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("COLUMNS", "250")
    yield


@pytest.fixture
def serve_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """Only the ``serve`` subcommand, so these tests do not depend on ``demo`` and ``bench``."""
    monkeypatch.setattr(cli, "COMMANDS", {"serve": cli.COMMANDS["serve"]})


@pytest.fixture
def no_server(monkeypatch: pytest.MonkeyPatch) -> None:
    """``serve`` fails the test instead of starting uvicorn (it must refuse before that)."""

    def started(*_: object, **__: object) -> None:
        raise AssertionError("serve started")

    monkeypatch.setattr(serve.uvicorn, "run", started)


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


# --- Settings ----------------------------------------------------------------------------------


def test_defaults() -> None:
    s = Settings()
    assert s.bootstrap_servers is None
    assert (s.budget, s.budget_window, s.random_share) == (0.02, 1000, None)
    assert (s.classes, s.exclude, s.features) == ([], [], None)
    assert s.label_sources == ["reviewer", "chargeback", "api", "simulated"]
    assert s.emit_scores is True and s.model == "logreg"


def test_values_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STREAMAL_BUDGET", "0.05")
    monkeypatch.setenv("STREAMAL_CLASSES", "a,b,c")
    monkeypatch.setenv("STREAMAL_FEATURES", " amount , mcc ")
    monkeypatch.setenv("STREAMAL_EXCLUDE", "is_fraud")
    monkeypatch.setenv("STREAMAL_EMIT_SCORES", "false")
    monkeypatch.setenv("STREAMAL_MODEL", "hat")
    monkeypatch.setenv("STREAMAL_SESSION_TIMEOUT_MS", "2000")
    monkeypatch.setenv("STREAMAL_BOOTSTRAP_SERVERS", "127.0.0.1:9092")
    s = Settings()
    assert s.budget == 0.05
    assert s.classes == ["a", "b", "c"]
    assert s.features == ["amount", "mcc"]
    assert s.exclude == ["is_fraud"]
    assert s.emit_scores is False
    assert s.model == "hat"
    assert s.session_timeout_ms == 2000
    assert s.bootstrap_servers == "127.0.0.1:9092"


def test_empty_list_variables_mean_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    # ``STREAMAL_CLASSES=`` is what docker-compose and Helm write for a blank value.
    for name in ("CLASSES", "FEATURES", "EXCLUDE", "LABEL_SOURCES"):
        monkeypatch.setenv(f"STREAMAL_{name}", " , ")
    s = Settings()
    assert (s.classes, s.features, s.exclude) == ([], None, [])
    assert s.label_sources == Settings.model_fields["label_sources"].get_default(
        call_default_factory=True
    )


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("BUDGET", "0"),
        ("BUDGET", "1.5"),
        ("BUDGET", "lots"),
        ("BUDGET_WINDOW", "5"),
        ("RANDOM_SHARE", "2"),
        ("MODEL", "svm"),
        ("STRATEGY", "vibes"),
        ("SECURITY_PROTOCOL", "TLS"),
        ("SESSION_TIMEOUT_MS", "10"),
        ("HTTP_PORT", "70000"),
        ("LOG_LEVEL", "loud"),
        ("MAX_MESSAGE_BYTES", "1"),
        ("EMIT_SCORES", "perhaps"),
        ("FEATURE_WINDOWS_DAYS", "0"),  # a window that never holds an event: features all 0
        ("FEATURE_WINDOWS_DAYS", "1,-7"),
    ],
)
def test_invalid_values_are_refused(monkeypatch: pytest.MonkeyPatch, name: str, value: str) -> None:
    monkeypatch.setenv(f"STREAMAL_{name}", value)
    with pytest.raises(ValidationError) as info:
        Settings()
    assert name.lower() in str(info.value)


def test_kafka_client_config_passes_security_through() -> None:
    plain = Settings(bootstrap_servers="b:9092").kafka_client_config()
    assert plain == {"bootstrap_servers": "b:9092", "security_protocol": "PLAINTEXT"}
    secure = Settings(
        bootstrap_servers="b:9093",
        security_protocol="SASL_SSL",
        sasl_mechanism="SCRAM-SHA-512",
        sasl_username="u",
        sasl_password="p",
        ssl_cafile="/ca.pem",
    ).kafka_client_config()
    assert secure["sasl_mechanism"] == "SCRAM-SHA-512"
    assert (secure["sasl_plain_username"], secure["sasl_plain_password"]) == ("u", "p")
    assert secure["ssl_cafile"] == "/ca.pem"
    assert Settings().kafka_client_config()["bootstrap_servers"] == "127.0.0.1:9092"


# --- CLI ---------------------------------------------------------------------------------------


def test_serve_flags_become_settings(serve_only: None) -> None:
    args = cli.build_parser().parse_args(
        [
            "serve",
            "--budget",
            "0.1",
            "--classes",
            "legit,fraud",
            "--no-emit-scores",
            "--model",
            "hat",
            "--features",
            "amount,mcc",
            "--bootstrap-servers",
            "127.0.0.1:1",
        ]
    )
    assert args.command == "serve"
    s = cli.settings_from_args(args)
    assert s.budget == 0.1
    assert s.classes == ["legit", "fraud"]
    assert s.emit_scores is False
    assert s.model == "hat"
    assert s.features == ["amount", "mcc"]
    assert s.bootstrap_servers == "127.0.0.1:1"
    # Flags not given leave no trace in the namespace, so they cannot mask the environment.
    assert not hasattr(args, "seed") and s.seed == 42


def test_flags_override_the_environment(serve_only: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STREAMAL_BUDGET", "0.05")
    monkeypatch.setenv("STREAMAL_SEED", "7")
    monkeypatch.setenv("STREAMAL_EMIT_SCORES", "false")
    args = cli.build_parser().parse_args(["serve", "--budget", "0.2", "--emit-scores"])
    s = cli.settings_from_args(args)
    assert s.budget == 0.2  # the flag wins
    assert s.emit_scores is True  # the flag wins, for booleans too
    assert s.seed == 7  # the environment still applies where no flag was given


def test_serve_help_lists_every_setting(
    serve_only: None, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        cli.build_parser().parse_args(["serve", "--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    for name in Settings.model_fields:
        assert _flag(name) in text, name
        assert f"STREAMAL_{name.upper()}" in text, name
    assert "--no-emit-scores" in text and "--no-create-topics" in text


def test_choices_and_bad_values_exit_with_usage(
    serve_only: None, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        cli.build_parser().parse_args(["serve", "--model", "svm"])
    assert exit_info.value.code == 2
    assert "invalid choice" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["serve", "--budget", "2"])  # valid for argparse, refused by Settings
    assert exit_info.value.code == 2
    assert "budget" in capsys.readouterr().err


def test_serve_without_a_broker_refuses_to_start(
    serve_only: None, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["serve"]) == 2
    assert "bootstrap-servers" in capsys.readouterr().err  # an error: stderr, not stdout


@pytest.mark.parametrize(
    "flags",
    [
        ["--model", "gnb", "--class-balance", "0.5"],  # GaussianNB refuses a sample weight
        ["--model", "arf", "--source-weights", "chargeback=0.5"],  # ARF would ignore it
    ],
)
def test_serve_refuses_weights_the_model_cannot_learn(
    serve_only: None, capsys: pytest.CaptureFixture[str], flags: list[str]
) -> None:
    assert cli.main(["serve", "--bootstrap-servers", "127.0.0.1:1", *flags]) == 2
    assert "cannot learn weighted labels" in capsys.readouterr().err


def test_a_command_is_required(serve_only: None, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        cli.main([])
    assert exit_info.value.code == 2


def test_version(serve_only: None, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.strip() == f"streamal {streamal.__version__}"


def test_python_dash_m_runs_the_same_command_line() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "streamal", "--version"], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"streamal {streamal.__version__}"


def test_full_parser_has_serve_demo_and_bench(capsys: pytest.CaptureFixture[str]) -> None:
    parser = cli.build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    assert {"serve", "demo", "bench"} <= set(sub.choices)
    for name, command in sub.choices.items():
        flags = {opt for action in command._actions for opt in action.option_strings}
        assert {_flag(f) for f in Settings.model_fields} <= flags, name
    with pytest.raises(SystemExit):
        parser.parse_args(["--version"])
    assert capsys.readouterr().out.strip() == f"streamal {streamal.__version__}"


@pytest.mark.parametrize(
    ("level", "kafka_level"),
    [("info", "WARNING"), ("debug", "NOTSET"), ("warning", "WARNING"), ("error", "ERROR")],
)
def test_kafka_client_chatter_only_at_debug(
    level: str, kafka_level: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    kafka = logging.getLogger("kafka")
    monkeypatch.setattr(kafka, "level", kafka.level)  # restored after the test
    cli.configure_logging(level)
    assert logging.getLevelName(kafka.level) == kafka_level


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("no-key", "STREAMAL_CHECKPOINT_KEY"),
        ("empty-key", "STREAMAL_CHECKPOINT_KEY"),  # an empty HMAC key signs nothing
        ("missing-key-file", "missing.key"),
        ("empty-key-file", "empty.key"),
    ],
)
def test_serve_refuses_checkpoints_it_cannot_sign_with_a_usage_error(
    serve_only: None,
    no_server: None,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    case: str,
    message: str,
) -> None:
    """A checkpoint key that is missing, empty or unreadable: exit 2 and one line, no traceback."""
    (tmp_path / "empty.key").write_bytes(b"\n")
    key = {
        "no-key": [],
        "empty-key": ["--checkpoint-key", ""],
        "missing-key-file": ["--checkpoint-key-file", str(tmp_path / "missing.key")],
        "empty-key-file": ["--checkpoint-key-file", str(tmp_path / "empty.key")],
    }[case]
    flags = ["--bootstrap-servers", "127.0.0.1:1", "--checkpoint-dir", str(tmp_path / "ck")]
    assert cli.main(["serve", *flags, *key]) == 2
    err = capsys.readouterr().err
    assert message in err
    assert len(err.strip().splitlines()) == 1, err


def test_serve_refuses_a_checkpoint_that_does_not_verify_with_one_line(
    serve_only: None, no_server: None, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """A corrupt (or foreign, or unreadable) checkpoint stops serve before the server starts,
    with the reason and the way out in one line (exit 3). Before, the refusal came from
    uvicorn's failed startup, as a twenty-line traceback."""
    state = tmp_path / "ck"
    state.mkdir()
    (state / "checkpoint.bin").write_bytes(b"not a checkpoint")
    flags = ["--bootstrap-servers", "127.0.0.1:1", "--checkpoint-dir", str(state)]
    assert cli.main(["serve", *flags, "--checkpoint-key", "k"]) == 3
    err = capsys.readouterr().err
    assert err.startswith("streamal serve: ") and "--reset-state" in err, err
    assert len(err.strip().splitlines()) == 1, err


@pytest.mark.parametrize(
    ("flags", "env", "named"),
    [
        (["--budget", "2"], {}, "--budget"),
        (["--feature-windows-days", "1,x"], {}, "--feature-windows-days"),
        ([], {"STREAMAL_BUDGET_WINDOW": "5"}, "STREAMAL_BUDGET_WINDOW"),
        ([], {"STREAMAL_RANDOM_SHARE": "lots", "STREAMAL_SEED": "x"}, "STREAMAL_SEED"),
    ],
)
def test_invalid_settings_are_one_line_naming_flag_and_variable(
    serve_only: None,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    flags: list[str],
    env: dict[str, str],
    named: str,
) -> None:
    """Not pydantic's multi-line report with its URL: one error line that says where to look."""
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["serve", *flags])
    assert exit_info.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines[0].startswith("usage:") and len(lines) == 2, lines
    assert lines[1].startswith("streamal: error: ") and named in lines[1], lines
    assert "pydantic.dev" not in lines[1]


@pytest.mark.parametrize(
    "name",
    [
        name
        for name, field in Settings.model_fields.items()
        if field.annotation is str  # the names that have no "unset"
    ],
)
def test_names_that_cannot_be_unset_refuse_an_empty_value(
    monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    """``STREAMAL_ID_FIELD=`` would dead-letter every event as missing_id, and an empty topic
    name fails only in the loops; the Helm schema refuses both with minLength 1, so must we."""
    monkeypatch.setenv(f"STREAMAL_{name.upper()}", "")
    with pytest.raises(ValidationError) as info:
        Settings()
    assert name in str(info.value)


@pytest.mark.parametrize(
    ("given", "missing"),
    [
        ({"security_protocol": "SASL_SSL"}, "sasl_mechanism"),
        ({"security_protocol": "SASL_PLAINTEXT", "sasl_mechanism": "PLAIN"}, "sasl_username"),
        (
            {
                "security_protocol": "SASL_SSL",
                "sasl_mechanism": "SCRAM-SHA-512",
                "sasl_username": "u",
            },
            "sasl_password",
        ),
    ],
)
def test_sasl_without_its_credentials_is_refused_at_start(
    serve_only: None,
    no_server: None,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    given: dict[str, str],
    missing: str,
) -> None:
    """Without them the client fails only on connecting, in a loop that restarts forever and
    never gets ready (the Helm chart refuses the same values); the password is never echoed."""
    for name, value in given.items():
        monkeypatch.setenv(f"STREAMAL_{name.upper()}", value)
    monkeypatch.setenv("STREAMAL_BOOTSTRAP_SERVERS", "127.0.0.1:1")
    monkeypatch.setenv("STREAMAL_API_TOKEN", "hunter2")
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["serve"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert f"STREAMAL_{missing.upper()}" in err, err
    assert "hunter2" not in err


def test_a_heartbeat_not_below_the_session_timeout_is_refused(
    serve_only: None, no_server: None, capsys: pytest.CaptureFixture[str]
) -> None:
    """kafka-python refuses it when the events consumer is built, inside the loop, which then
    restarts every second and never gets partitions: ``--session-timeout-ms 2000`` alone (the
    default heartbeat is 3000) did that. Refused at start now, naming both settings."""
    assert (
        cli.main(["serve", "--bootstrap-servers", "127.0.0.1:1", "--session-timeout-ms", "2000"])
        == 2
    )
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert "STREAMAL_HEARTBEAT_INTERVAL_MS" in err and "STREAMAL_SESSION_TIMEOUT_MS" in err, err
