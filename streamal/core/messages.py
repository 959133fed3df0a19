"""Message contracts: decode and validate what comes in, encode what goes out.

Decoding is strict and cheap because it runs once per transaction: ``json.loads`` plus one pass
over the fields, no model objects. Every rejection raises :class:`InvalidMessage` with a short,
bounded ``reason`` (used as a metric label and in the dead-letter record) and a human ``detail``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson

from streamal.core.pending import PendingItem

__all__ = [
    "SCHEMA_VERSION",
    "ClassSet",
    "InvalidMessage",
    "Label",
    "Transaction",
    "TransactionSchema",
    "decode_label",
    "decode_review",
    "decode_transaction",
    "encode",
    "parse_time",
    "review_message",
    "score_message",
    "to_iso",
]

SCHEMA_VERSION = 1
#: Largest magnitude of a numeric feature. Beyond about 1e154 a square overflows, and a single
#: label carrying such a value turned the model's weights into NaN (or made tree models raise)
#: for good; no real amount, count or timestamp comes near this.
MAX_FEATURE_MAGNITUDE = 1e100

#: The bounded set of rejection reasons, so that metric label values stay bounded.
REASONS = (
    "oversize",
    "not_json",
    "not_object",
    "missing_id",
    "bad_type",
    "bad_value",
    "unknown_class",
    "too_many_features",
    "processing_error",
)


class InvalidMessage(ValueError):
    """A message that cannot be processed; ``reason`` is one of :data:`REASONS`."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


def _reject_constant(name: str) -> float:
    raise InvalidMessage("bad_value", f"non-finite number {name} is not allowed")


def _loads(raw: bytes | str | None, max_bytes: int) -> Any:
    if raw is None:  # a record with a null value (a Kafka tombstone): an empty message
        raw = b""
    if len(raw) > max_bytes:
        raise InvalidMessage("oversize", f"message of {len(raw)} bytes exceeds {max_bytes}")
    try:
        return orjson.loads(raw)  # strict and about four times faster than json
    except orjson.JSONDecodeError:
        pass  # bad input: let the standard parser say exactly what is wrong with it
    try:
        return json.loads(raw, parse_constant=_reject_constant)
    except InvalidMessage:
        raise
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidMessage("not_json", f"not valid UTF-8 JSON ({exc})") from None
    except RecursionError:
        raise InvalidMessage("not_json", "JSON nested too deeply") from None


#: The times :func:`to_iso` can write (0001-01-01 to 9999-12-31 UTC), as epoch seconds.
_MIN_TIME, _MAX_TIME = -62_135_596_800.0, 253_402_300_799.999


def parse_time(value: Any) -> float | None:
    """Epoch seconds from epoch seconds (int/float) or an ISO-8601 string; ``None`` stays None.

    >>> parse_time("2018-04-01T00:00:31Z")
    1522540831.0
    >>> parse_time(1522540831)
    1522540831.0
    """
    if value is None:
        return None
    if isinstance(value, bool):
        raise InvalidMessage("bad_type", "a time must be epoch seconds or an ISO-8601 string")
    if isinstance(value, int | float):
        # Compared as is: float() of a huge int overflows, and NaN fails every comparison.
        if not _MIN_TIME <= value <= _MAX_TIME:
            raise InvalidMessage("bad_value", "time is not finite or not within years 1-9999")
        return float(value)
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            raise InvalidMessage("bad_value", f"unparseable time {value[:40]!r}") from None
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=UTC)
        ts = parsed.timestamp()
        if not _MIN_TIME <= ts <= _MAX_TIME:
            raise InvalidMessage("bad_value", "time is not within years 1-9999")
        return ts
    raise InvalidMessage("bad_type", "a time must be epoch seconds or an ISO-8601 string")


def to_iso(ts: float) -> str:
    """ISO-8601 UTC with millisecond precision, the form every outgoing time takes.

    >>> to_iso(1522540831.5)
    '2018-04-01T00:00:31.500Z'
    """
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds")[:-6] + "Z"


def _event_id(value: Any) -> str:
    if isinstance(value, str) and value:
        if len(value) > 256:
            raise InvalidMessage("bad_value", "event id longer than 256 characters")
        if not value.isascii():
            try:
                value.encode()  # the id becomes the Kafka key: a lone surrogate cannot
            except UnicodeEncodeError:
                raise InvalidMessage("bad_value", "event id is not valid Unicode") from None
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if value is None:
        raise InvalidMessage("missing_id", "the event id field is missing")
    raise InvalidMessage("bad_type", "the event id must be a non-empty string or an integer")


@dataclass(frozen=True, slots=True)
class TransactionSchema:
    """Which fields of a transaction mean what.

    Parameters
    ----------
    id_field
        Field holding the event id (string or integer).
    time_field
        Optional field holding the event time (epoch seconds or ISO-8601).
    features
        Fields used as features; ``None`` means every other field.
    exclude
        Fields never used as features (e.g. a ground-truth column in a replayed file).
    max_features
        Upper bound on the number of features after one-hot encoding of strings.
    """

    id_field: str = "event_id"
    time_field: str = "timestamp"
    features: frozenset[str] | None = None
    exclude: frozenset[str] = frozenset()
    max_features: int = 1000
    skipped: frozenset[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        fixed = frozenset({self.id_field, self.time_field, "schema_version"})
        object.__setattr__(self, "skipped", fixed | self.exclude)


@dataclass(slots=True)
class Transaction:
    """A decoded transaction: its id, time, the features the model sees, and the raw event."""

    event_id: str
    timestamp: float | None
    features: dict[str, float]
    event: dict[str, Any]


def extract_features(event: Mapping[str, Any], schema: TransactionSchema) -> dict[str, float]:
    """Flat numeric features: numbers as floats, booleans as 0/1, strings one-hot, nulls absent.

    >>> extract_features({"event_id": "e1", "amount": 12, "night": True, "mcc": "5411",
    ...                   "note": None}, TransactionSchema())
    {'amount': 12.0, 'night': 1.0, 'mcc=5411': 1.0}
    """
    skipped = schema.skipped
    wanted = schema.features
    out: dict[str, float] = {}
    for key, value in event.items():
        if key in skipped or (wanted is not None and key not in wanted) or value is None:
            continue
        kind = type(value)
        if kind is float and -MAX_FEATURE_MAGNITUDE <= value <= MAX_FEATURE_MAGNITUDE:
            out[key] = value  # finite and in range (NaN fails both comparisons): common case first
        elif kind is str and len(value) <= 256:
            out[f"{key}={value}"] = 1.0
        elif value is True or value is False:
            out[key] = 1.0 if value else 0.0
        elif isinstance(value, int | float):
            try:
                number = float(value)
            except OverflowError:  # an integer beyond the float range
                number = math.inf
            if not -MAX_FEATURE_MAGNITUDE <= number <= MAX_FEATURE_MAGNITUDE:
                raise InvalidMessage(
                    "bad_value", f"feature {key[:64]!r} is not finite or beyond ±1e100"
                )
            out[key] = number
        elif isinstance(value, str):
            if len(value) > 256:
                raise InvalidMessage("bad_value", f"string feature {key[:64]!r} too long")
            out[f"{key}={value}"] = 1.0
        else:
            name = type(value).__name__
            raise InvalidMessage("bad_type", f"feature {key[:64]!r} is a {name}, not flat")
    if len(out) > schema.max_features:
        raise InvalidMessage("too_many_features", f"{len(out)} features > {schema.max_features}")
    return out


def decode_transaction(
    raw: bytes | str | None, schema: TransactionSchema, max_bytes: int = 65536
) -> Transaction:
    """Decode and validate one transaction message.

    >>> t = decode_transaction(b'{"event_id": "e1", "amount": 3.5}', TransactionSchema())
    >>> t.event_id, t.features
    ('e1', {'amount': 3.5})
    >>> decode_transaction(b'[1, 2]', TransactionSchema())
    Traceback (most recent call last):
    ...
    streamal.core.messages.InvalidMessage: not_object: a transaction must be a JSON object
    """
    event = _loads(raw, max_bytes)
    if not isinstance(event, dict):
        raise InvalidMessage("not_object", "a transaction must be a JSON object")
    event_id = _event_id(event.get(schema.id_field))
    timestamp = parse_time(event.get(schema.time_field))
    return Transaction(event_id, timestamp, extract_features(event, schema), event)


class ClassSet:
    """The classes the service accepts, and how label values map onto them.

    Binary by default: ``True``/``1``/``"1"``/``"true"`` is the positive class, their opposites
    the negative one, and probabilities are reported as ``{"false": p, "true": p}``. With explicit
    class names, labels must be one of those names (compared as strings); the last name is the
    positive (risk) class.

    >>> ClassSet().parse("1"), ClassSet().parse(False)
    (True, False)
    >>> ClassSet(["legit", "fraud"]).parse("fraud")
    'fraud'
    >>> ClassSet().parse("maybe")
    Traceback (most recent call last):
    ...
    streamal.core.messages.InvalidMessage: unknown_class: label 'maybe' is not one of [False, True]
    """

    _TRUE = frozenset({"1", "true", "True", "TRUE"})
    _FALSE = frozenset({"0", "false", "False", "FALSE"})

    def __init__(self, names: Sequence[str] | None = None) -> None:
        self.binary = not names
        self.classes: list[Hashable] = [False, True] if not names else list(names)
        if len(set(self.classes)) != len(self.classes) or len(self.classes) < 2:
            raise ValueError("classes must be at least two distinct names")
        self._by_name = {str(c): c for c in self.classes}

    def parse(self, value: Any) -> Hashable:
        if self.binary:
            if value is True or value is False:
                return bool(value)
            if isinstance(value, int) and value in (0, 1):
                return bool(value)
            if isinstance(value, str) and value in self._TRUE:
                return True
            if isinstance(value, str) and value in self._FALSE:
                return False
        elif isinstance(value, str | int) and not isinstance(value, bool):
            found = self._by_name.get(str(value))
            if found is not None:
                return found
        shown = repr(value)[:40]
        raise InvalidMessage("unknown_class", f"label {shown} is not one of {self.classes}")

    def from_name(self, name: str) -> Hashable:
        """The class a JSON name stands for (the inverse of :meth:`name`).

        >>> ClassSet().from_name("true"), ClassSet(["a", "b"]).from_name("b")
        (True, 'b')
        """
        return self.parse(name)

    @staticmethod
    def name(cls: Hashable) -> str:
        """The JSON name of a class (``true``/``false`` for binary)."""
        if cls is True or cls is False:
            return "true" if cls else "false"
        return str(cls)

    def __len__(self) -> int:
        return len(self.classes)


@dataclass(slots=True)
class Label:
    """A decoded label: which event, which class, from whom, when, and maybe the event itself."""

    event_id: str
    label: Hashable
    source: str = "reviewer"
    labelled_at: float | None = None
    event: dict[str, Any] | None = field(default=None)
    #: The features the event had when it was scored, where the sender kept them (a scoring
    #: log); learning from those avoids the skew of features recomputed weeks later.
    features: dict[str, float] | None = field(default=None)


SOURCE_MAX = 32


def decode_label(
    raw: bytes | str | Mapping[str, Any] | None, classes: ClassSet, max_bytes: int = 65536
) -> Label:
    """Decode and validate one label message (bytes from Kafka or a dict from HTTP).

    >>> label = decode_label(b'{"event_id": "e1", "label": 1, "source": "chargeback"}', ClassSet())
    >>> label.event_id, label.label, label.source, label.event
    ('e1', True, 'chargeback', None)
    """
    body = raw if isinstance(raw, Mapping) else _loads(raw, max_bytes)
    if not isinstance(body, Mapping):
        raise InvalidMessage("not_object", "a label must be a JSON object")
    event_id = _event_id(body.get("event_id"))
    if "label" not in body:
        raise InvalidMessage("bad_value", "the label field is missing")
    label = classes.parse(body["label"])
    source = body.get("source", "reviewer")
    if not isinstance(source, str) or not source or len(source) > SOURCE_MAX:
        raise InvalidMessage("bad_type", f"source must be a string of 1-{SOURCE_MAX} characters")
    labelled_at = parse_time(body.get("labelled_at"))
    event = body.get("event")
    if event is not None and not isinstance(event, dict):
        raise InvalidMessage("bad_type", "event, when given, must be a JSON object")
    return Label(event_id, label, source, labelled_at, event)


def encode(body: Mapping[str, Any]) -> bytes:
    """JSON bytes of an outgoing message (orjson; the standard library for what orjson refuses,
    such as integers beyond 64 bits in an excluded field of the original event).

    >>> encode({"event_id": "e1", "score": 0.25})
    b'{"event_id":"e1","score":0.25}'
    """
    try:
        return orjson.dumps(body)
    except TypeError:
        return json.dumps(body, default=str).encode()


def score_message(
    event_id: str,
    probabilities: Mapping[str, float],
    score: float,
    requested: bool,
    model_version: int,
) -> bytes:
    """The message on the scores topic: what a downstream blocker reads for every event."""
    return encode(
        {
            "schema_version": SCHEMA_VERSION,
            "event_id": event_id,
            "probabilities": probabilities,
            "score": score,
            "label_requested": requested,
            "model_version": model_version,
        }
    )


def review_message(
    txn: Transaction,
    probabilities: Mapping[str, float],
    predicted: Hashable,
    reason: str,
    query_probability: float,
    uncertainty: float,
    model_version: int,
    requested_at: float,
) -> bytes:
    """The message on the reviews topic: everything a reviewer (and a replica) needs."""
    return encode(
        {
            "schema_version": SCHEMA_VERSION,
            "event_id": txn.event_id,
            "event": txn.event,
            "features": txn.features,
            "probabilities": probabilities,
            "predicted": ClassSet.name(predicted),
            "reason": reason,
            "query_probability": query_probability,
            "uncertainty": uncertainty,
            "model_version": model_version,
            "requested_at": to_iso(requested_at),
        }
    )


def _finite(value: Any) -> float:
    """A feature as written by :func:`review_message`: a finite number, nothing else."""
    if isinstance(value, int | float) and math.isfinite(value):
        return float(value)
    raise InvalidMessage("bad_value", f"feature value {value!r:.40} is not a finite number")


def decode_review(
    raw: bytes | str | None, classes: ClassSet, max_bytes: int = 1 << 20
) -> PendingItem:
    """Rebuild an open review request from its message on the reviews topic.

    Every replica reads the reviews topic, so every replica can learn a label for an event
    that another replica scored, and a restarted replica recovers the requests it made after
    its last checkpoint.
    """
    body = _loads(raw, max_bytes)
    if not isinstance(body, dict):
        raise InvalidMessage("not_object", "a review request must be a JSON object")
    event_id = _event_id(body.get("event_id"))
    features = body.get("features")
    probabilities = body.get("probabilities")
    if not isinstance(features, dict) or not isinstance(probabilities, dict):
        raise InvalidMessage("bad_type", "a review request needs features and probabilities")
    try:
        item = PendingItem(
            event_id=event_id,
            features={str(k): _finite(v) for k, v in features.items()},
            proba={classes.from_name(str(k)): float(v) for k, v in probabilities.items()},
            predicted=classes.from_name(str(body.get("predicted"))),
            reason=str(body.get("reason", "uncertainty")),
            probability=float(body.get("query_probability", 1.0)),
            model_version=int(body.get("model_version", 0)),
            requested_at=parse_time(body.get("requested_at")) or 0.0,
            event=body.get("event") if isinstance(body.get("event"), dict) else None,
        )
    except (TypeError, ValueError) as exc:
        if isinstance(exc, InvalidMessage):
            raise
        raise InvalidMessage("bad_value", f"review request does not decode ({exc})") from None
    return item
