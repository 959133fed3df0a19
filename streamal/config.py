"""Configuration: one pydantic-settings model, read from ``STREAMAL_*`` environment variables.

The CLI derives its flags from the same fields (``--budget`` for ``budget``, and so on), so the
environment, the flags, the README's table and ``--help`` can never disagree.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_core import PydanticUseDefault
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

__all__ = ["CONNECTION_SETTINGS", "Settings"]

#: A list given as comma-separated text in the environment and on the command line.
Names = Annotated[list[str], NoDecode]


#: The settings that say how to reach the broker (what :meth:`Settings.kafka_client_config` reads):
#: every process that talks to the same cluster needs all of them.
CONNECTION_SETTINGS = frozenset(
    {
        "bootstrap_servers",
        "security_protocol",
        "sasl_mechanism",
        "sasl_username",
        "sasl_password",
        "ssl_cafile",
    }
)


#: SASL mechanisms that authenticate with sasl_username and sasl_password.
PASSWORD_MECHANISMS = frozenset({"PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"})


class Settings(BaseSettings):
    """Every setting of the service; each is ``STREAMAL_<NAME>`` in the environment."""

    model_config = SettingsConfigDict(env_prefix="STREAMAL_", extra="ignore")

    # Broker
    bootstrap_servers: str | None = Field(
        None,
        description="Kafka bootstrap servers, host:port[,host:port]. Unset in the demo: "
        "an embedded broker is started.",
    )
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = Field(
        "PLAINTEXT", description="Kafka security protocol."
    )
    sasl_mechanism: str | None = Field(
        None, description="SASL mechanism, e.g. PLAIN, SCRAM-SHA-512."
    )
    sasl_username: str | None = Field(None, description="SASL user name.")
    sasl_password: SecretStr | None = Field(None, description="SASL password.")
    ssl_cafile: str | None = Field(None, description="CA bundle to verify the brokers.")
    consumer_group: str = Field(
        "streamal", min_length=1, description="Consumer group for the transactions."
    )
    session_timeout_ms: int = Field(
        10_000, ge=1000, description="Consumer session timeout; group joins can take half of it."
    )
    heartbeat_interval_ms: int = Field(3_000, ge=100, description="Consumer heartbeat interval.")
    create_topics: bool = Field(True, description="Create missing topics at start.")
    topic_partitions: int = Field(1, ge=1, description="Partitions of topics created at start.")

    # Topics
    topic_transactions: str = Field(
        "transactions", min_length=1, description="Incoming transactions."
    )
    topic_scores: str = Field(
        "scores", min_length=1, description="Outgoing scores, one per transaction."
    )
    topic_reviews: str = Field("reviews", min_length=1, description="Outgoing review requests.")
    topic_labels: str = Field("labels", min_length=1, description="Incoming labels.")
    topic_dead_letter: str = Field(
        "dead-letter", min_length=1, description="Rejected input, with the reason."
    )
    emit_scores: bool = Field(True, description="Produce a score message for every transaction.")

    # Messages
    id_field: str = Field("event_id", min_length=1, description="Field holding the event id.")
    time_field: str = Field("timestamp", min_length=1, description="Field holding the event time.")
    features: Names | None = Field(
        None, description="Feature fields (comma-separated); all other fields when unset."
    )
    exclude: Names = Field(
        default_factory=list, description="Fields never used as features (comma-separated)."
    )
    classes: Names = Field(
        default_factory=list,
        description="Class names, positive (risk) class last; binary true/false when unset.",
    )
    card_field: str | None = Field(
        None,
        description="Field with the card (customer) id: turns on per-card and per-terminal "
        "rolling features (see the README); unset: raw fields only.",
    )
    terminal_field: str = Field(
        "terminal_id", min_length=1, description="Field with the terminal id."
    )
    amount_field: str = Field("amount", min_length=1, description="Field with the amount.")
    feature_windows_days: Annotated[list[int], NoDecode] = Field(
        default_factory=lambda: [1, 7, 30], description="Rolling feature windows, in days."
    )
    terminal_delay_days: float = Field(
        0.0,
        ge=0.0,
        description="Terminal fraud-risk windows end this many days before each transaction: "
        "the chargeback delay, so that a window counts all its frauds (the handbook's delay "
        "period); 0: up to now, for feeds where fraud labels come fast.",
    )
    max_message_bytes: int = Field(65_536, ge=256, description="Larger messages are rejected.")
    label_sources: Names = Field(
        default_factory=lambda: ["reviewer", "chargeback", "api", "simulated"],
        description="Label sources reported by name in metrics; others are reported as 'other'.",
    )

    # Model and gate
    model: Literal["logreg", "hat", "arf", "gnb", "logreg-slow"] = Field(
        "logreg", description="River model."
    )
    strategy: Literal[
        "balanced", "variable", "random", "fixed", "randomized", "split", "quantile", "fraud"
    ] = Field("balanced", description="Query strategy of the gate (see the README).")
    measure: Literal[
        "entropy",
        "least_confidence",
        "margin",
        "vote_entropy",
        "kl_divergence",
        "density",
        "gradient",
        "pal",
        "auto",
    ] = Field(
        "auto",
        description="Informativeness measure of the uncertainty lane (auto: entropy, times "
        "PAL's gain while a class is rare among the labels).",
    )
    budget: float = Field(0.02, gt=0.0, le=1.0, description="Share of events sent to review.")
    budget_window: int = Field(
        1000, ge=10, description="Events over which the budget is paced and spend is reported."
    )
    random_share: float | None = Field(
        None,
        ge=0.0,
        le=1.0,
        description="Share of the budget spent at random (the unbiased lane); unset: the "
        "strategy's own (0.1; split 0.2; random 1).",
    )
    exploit_share: float | None = Field(
        None,
        ge=0.0,
        le=1.0,
        description="Share of the budget for the highest-risk events; unset: the strategy's "
        "own (fraud 0.3, others 0). Ignored with alert_cards_per_day.",
    )
    alert_cards_per_day: int | None = Field(
        None,
        ge=1,
        description="Daily alert lane: each UTC day of event time, the riskiest cards, at most "
        "this many, each once, go to review (reason exploit; needs card_field), and the rest of "
        "the budget to the exploration lanes; unset: the exploit share.",
    )
    labels_per_hour: float | None = Field(
        None, gt=0.0, description="Reviewer capacity: at most this many requests an hour."
    )
    max_open_reviews: int | None = Field(
        None, ge=1, description="No new requests while this many reviews are open."
    )
    threshold_step: float = Field(0.01, gt=0.0, lt=1.0, description="Variable threshold step.")
    seed: int = Field(42, description="Seed of the model and the gate.")
    label_policy: Literal["pooled", "split"] = Field(
        "pooled",
        description="Learn every label source in one model, or keep investigator feedback and "
        "chargebacks in two models whose probabilities are averaged.",
    )
    source_weights: Names = Field(
        default_factory=list,
        description="Learning weight per label source, e.g. chargeback=0.5 (others 1).",
    )
    class_balance: float = Field(
        0.0,
        ge=0.0,
        le=1.0,
        description="Learning weight per class: (n / (K * n_class)) ** this, so a rare class "
        "counts; 0: off, 0.5: a rare class at budgets of about 1 % (measure it first), "
        "1: fully balanced (swings online).",
    )

    # Pending store
    pending_max_items: int = Field(100_000, ge=1, description="Most open review requests kept.")
    pending_ttl_seconds: float = Field(
        7 * 24 * 3600.0, gt=0, description="Open review requests expire after this."
    )

    # State
    checkpoint_dir: str | None = Field(
        None, description="Directory for checkpoints (a volume); unset: no checkpoints."
    )
    checkpoint_key: SecretStr | None = Field(
        None, description="HMAC key that signs checkpoints (or checkpoint_key_file)."
    )
    checkpoint_key_file: str | None = Field(
        None, description="File holding the checkpoint key (a mounted secret)."
    )
    checkpoint_interval_seconds: float = Field(
        30.0, gt=0, description="Write a checkpoint at least this often."
    )
    checkpoint_every_labels: int = Field(
        500, ge=1, description="Also write one after this many learned labels."
    )
    reset_state: bool = Field(
        False, description="Start fresh: ignore an existing (or unreadable) checkpoint."
    )
    shutdown_grace_seconds: float = Field(
        20.0, gt=0, description="On SIGTERM, finish, flush, commit and checkpoint within this."
    )
    label_wait_seconds: float = Field(
        10.0,
        ge=0,
        description="How long a label for an unknown id waits for its review request to be read.",
    )

    # HTTP
    api_token: SecretStr | None = Field(
        None, description="Bearer token required by mutating HTTP endpoints; unset: open."
    )
    max_request_bytes: int = Field(
        1_048_576, ge=1024, description="Larger HTTP request bodies are refused (413)."
    )
    http_host: str = Field("127.0.0.1", min_length=1, description="HTTP bind address.")
    http_port: int = Field(8000, ge=0, le=65535, description="HTTP port (0: any free port).")
    log_level: Literal["debug", "info", "warning", "error"] = Field(
        "info", description="Log level (the Kafka client's own INFO lines show only at debug)."
    )

    @field_validator(
        "features",
        "exclude",
        "classes",
        "label_sources",
        "feature_windows_days",
        "source_weights",
        mode="before",
    )
    @classmethod
    def _split_commas(cls, value: object) -> object:
        if isinstance(value, str):
            parts = [part.strip() for part in value.split(",") if part.strip()]
            if not parts:  # an empty variable (``STREAMAL_CLASSES=``) means unset, not invalid
                raise PydanticUseDefault()
            return parts
        return value

    @field_validator("feature_windows_days")
    @classmethod
    def _whole_days(cls, value: list[int]) -> list[int]:
        # A window of 0 days (or fewer) never holds an event: its features would be 0 forever.
        if any(days < 1 for days in value):
            raise ValueError("every window must be at least 1 day")
        return value

    @model_validator(mode="after")
    def _sasl_credentials(self) -> Settings:
        """A SASL protocol without its mechanism or credentials fails only when the client
        connects, in loops that retry forever and never get ready: refuse it at start."""
        if not self.security_protocol.startswith("SASL_"):
            return self
        needed = ["sasl_mechanism"]
        if (self.sasl_mechanism or "").upper() in PASSWORD_MECHANISMS:
            needed += ["sasl_username", "sasl_password"]
        missing = [name for name in needed if not getattr(self, name)]
        if missing:
            names = ", ".join(f"STREAMAL_{n.upper()} (--{n.replace('_', '-')})" for n in missing)
            raise ValueError(f"security_protocol {self.security_protocol} needs {names}")
        return self

    def checkpoint_secret(self) -> bytes | None:
        """The checkpoint signing key, from the setting or the mounted file; None without one.

        A key that is empty (say an empty mounted secret) is a ValueError, as is a key file that
        cannot be read: anybody can sign with an empty key, and a checkpoint whose signature
        checks is unpickled, i.e. run as code.
        """
        if self.checkpoint_key is not None:
            key = self.checkpoint_key.get_secret_value().strip().encode()
            where = "STREAMAL_CHECKPOINT_KEY (--checkpoint-key)"
        elif self.checkpoint_key_file:
            where = f"checkpoint_key_file {self.checkpoint_key_file!r}"
            try:
                with open(self.checkpoint_key_file, "rb") as f:
                    key = f.read().strip()
            except OSError as exc:
                raise ValueError(f"{where} cannot be read: {exc.strerror}") from exc
        else:
            return None
        if not key:
            raise ValueError(f"{where} is empty: checkpoints need a secret key")
        return key

    def kafka_client_config(self) -> dict[str, object]:
        """Connection settings shared by every Kafka client (security passes straight through)."""
        config: dict[str, object] = {
            "bootstrap_servers": self.bootstrap_servers or "127.0.0.1:9092",
            "security_protocol": self.security_protocol,
        }
        for key in ("sasl_mechanism", "ssl_cafile"):
            if getattr(self, key):
                config[key] = getattr(self, key)
        if self.sasl_username:
            config["sasl_plain_username"] = self.sasl_username
            password = self.sasl_password
            config["sasl_plain_password"] = password.get_secret_value() if password else None
        return config


def settings_table() -> str:
    """The README's configuration table, generated from the fields (a test keeps them equal)."""
    rows = [
        "| environment variable | flag | default | meaning |",
        "| --- | --- | --- | --- |",
    ]
    for name, field in Settings.model_fields.items():
        default = field.get_default(call_default_factory=True)
        if isinstance(default, list):
            default = ",".join(map(str, default)) or "(none)"
        shown = "(unset)" if default is None else default
        flag = "--" + name.replace("_", "-")
        rows.append(f"| `STREAMAL_{name.upper()}` | `{flag}` | `{shown}` | {field.description} |")
    return "\n".join(rows) + "\n"
