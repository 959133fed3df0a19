"""Message contracts: every rejection has its bounded reason, and nothing else ever escapes."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from streamal.core.messages import (
    REASONS,
    ClassSet,
    InvalidMessage,
    Label,
    TransactionSchema,
    decode_label,
    decode_review,
    decode_transaction,
    extract_features,
    parse_time,
    review_message,
    to_iso,
)

SCHEMA = TransactionSchema()


def _reason(raw: bytes | str, schema: TransactionSchema = SCHEMA, **kw: Any) -> str:
    with pytest.raises(InvalidMessage) as info:
        decode_transaction(raw, schema, **kw)
    assert info.value.reason in REASONS
    assert info.value.detail and info.value.reason in str(info.value)
    return info.value.reason


# --- transactions: rejections ------------------------------------------------------------------


def test_oversize() -> None:
    body = b'{"event_id": "e1", "note": "' + b"x" * 100 + b'"}'
    assert _reason(body, max_bytes=len(body) - 1) == "oversize"
    assert decode_transaction(body, SCHEMA, max_bytes=len(body)).event_id == "e1"
    assert _reason(b" " * 70_000) == "oversize"  # checked before any parsing


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"{",
        b"{'event_id': 'e1'}",
        b'{"event_id": "e1",}',
        b"event_id=e1",
        b'{"event_id": "e\xff1"}',  # invalid UTF-8 inside a string
        b"\xc3\x28",  # invalid UTF-8 two-byte sequence
        b"\x80\x81\x82",
        b"[" * 5000 + b"]" * 5000,  # nested too deeply for the parser
    ],
)
def test_not_json(raw: bytes) -> None:
    assert _reason(raw) == "not_json"


def test_a_null_record_is_not_json_for_every_decoder() -> None:
    """A Kafka record with a null value (a tombstone) is an empty message, never a TypeError
    that would fail a loop at that record again and again."""
    decoders = (
        lambda: decode_transaction(None, SCHEMA),
        lambda: decode_label(None, ClassSet()),
        lambda: decode_review(None, ClassSet()),
    )
    for decode in decoders:
        with pytest.raises(InvalidMessage) as refused:
            decode()
        assert refused.value.reason == "not_json"


@pytest.mark.parametrize("raw", [b"[1, 2]", b'"e1"', b"42", b"null", b"true"])
def test_not_object(raw: bytes) -> None:
    assert _reason(raw) == "not_object"


@pytest.mark.parametrize("raw", [b"{}", b'{"amount": 1}', b'{"event_id": null}', b'{"id": "e1"}'])
def test_missing_id(raw: bytes) -> None:
    assert _reason(raw) == "missing_id"


@pytest.mark.parametrize(
    "raw",
    [
        b'{"event_id": "e1", "tags": [1, 2]}',  # nested list feature
        b'{"event_id": "e1", "card": {"age": 3}}',  # nested object feature
        b'{"event_id": true}',  # a boolean is not an id
        b'{"event_id": false}',
        b'{"event_id": 1.5}',
        b'{"event_id": ""}',
        b'{"event_id": ["e1"]}',
        b'{"event_id": "e1", "timestamp": true}',
        b'{"event_id": "e1", "timestamp": [1]}',
    ],
)
def test_bad_type(raw: bytes) -> None:
    assert _reason(raw) == "bad_type"


@pytest.mark.parametrize(
    "raw",
    [
        b'{"event_id": "e1", "amount": NaN}',
        b'{"event_id": "e1", "amount": Infinity}',
        b'{"event_id": "e1", "amount": -Infinity}',
        b'{"event_id": "e1", "amount": 1e400}',  # parses to inf
        b'{"event_id": "e1", "amount": 1' + b"0" * 400 + b"}",  # an int beyond any float
        b'{"event_id": "e1", "note": "' + b"x" * 257 + b'"}',
        b'{"event_id": "' + b"e" * 257 + b'"}',
        b'{"event_id": "\\ud800"}',  # a lone surrogate cannot become a Kafka key
        b'{"event_id": "e\xed\xa0\x80"}',  # the same, smuggled in as raw bytes
        b'{"event_id": "e1", "timestamp": "yesterday"}',
        b'{"event_id": "e1", "timestamp": NaN}',
        b'{"event_id": "e1", "timestamp": 1e20}',  # beyond the year 9999
        b'{"event_id": "e1", "timestamp": 1' + b"0" * 400 + b"}",
        b'{"event_id": "e1", "timestamp": "0001-01-01T00:00:00+01:00"}',  # before year 1 UTC
    ],
)
def test_bad_value(raw: bytes) -> None:
    assert _reason(raw) == "bad_value"


def test_longest_allowed_strings_pass() -> None:
    raw = json.dumps({"event_id": "e" * 256, "note": "x" * 256}).encode()
    txn = decode_transaction(raw, SCHEMA)
    assert txn.features == {"note=" + "x" * 256: 1.0}


def test_too_many_features() -> None:
    schema = TransactionSchema(max_features=3)
    ok = b'{"event_id": "e1", "a": 1, "b": 2, "c": "x"}'
    assert len(decode_transaction(ok, schema).features) == 3
    assert _reason(b'{"event_id": "e1", "a": 1, "b": 2, "c": "x", "d": 0}', schema) == (
        "too_many_features"
    )


# --- transactions: what gets through ----------------------------------------------------------


def test_features_follow_the_rules() -> None:
    raw = json.dumps(
        {
            "schema_version": 1,
            "event_id": "e1",
            "timestamp": "2018-04-01T00:00:31Z",
            "amount": 12,
            "ratio": 0.25,
            "night": True,
            "online": False,
            "mcc": "5411",
            "note": None,
        }
    ).encode()
    txn = decode_transaction(raw, SCHEMA)
    assert txn.event_id == "e1"
    assert txn.timestamp == 1522540831.0
    assert txn.features == {
        "amount": 12.0,
        "ratio": 0.25,
        "night": 1.0,
        "online": 0.0,
        "mcc=5411": 1.0,
    }
    assert all(type(v) is float for v in txn.features.values())
    assert txn.event["note"] is None  # the raw event is kept whole
    assert txn.event["mcc"] == "5411"


def test_integer_id_and_epoch_timestamp() -> None:
    txn = decode_transaction(b'{"event_id": 123, "timestamp": 1700000000}', SCHEMA)
    assert (txn.event_id, txn.timestamp, txn.features) == ("123", 1700000000.0, {})


def test_configured_fields() -> None:
    schema = TransactionSchema(
        id_field="txn",
        time_field="ts",
        features=frozenset({"amount", "mcc", "is_fraud"}),
        exclude=frozenset({"is_fraud"}),
    )
    raw = b'{"txn": "t9", "ts": 5, "amount": 2, "mcc": "x", "other": 7, "is_fraud": 1}'
    txn = decode_transaction(raw, schema)
    assert (txn.event_id, txn.timestamp) == ("t9", 5.0)
    assert txn.features == {"amount": 2.0, "mcc=x": 1.0}
    # Fields outside the whitelist are not inspected, so their type does not matter.
    ok = decode_transaction(b'{"txn": "t9", "amount": 1, "blob": {"a": [1]}}', schema)
    assert ok.features == {"amount": 1.0}
    assert _reason(b'{"event_id": "e1"}', schema) == "missing_id"


def test_extract_features_from_a_label_event() -> None:
    assert extract_features({"event_id": "e", "a": 1, "b": "x"}, SCHEMA) == {"a": 1.0, "b=x": 1.0}
    with pytest.raises(InvalidMessage, match="bad_type"):
        extract_features({"a": [1]}, SCHEMA)


def test_str_input_is_accepted_too() -> None:
    assert decode_transaction('{"event_id": "é"}', SCHEMA).event_id == "é"


# --- classes -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (True, True),
        (False, False),
        (1, True),
        (0, False),
        ("1", True),
        ("0", False),
        ("true", True),
        ("True", True),
        ("TRUE", True),
        ("false", False),
        ("FALSE", False),
    ],
)
def test_binary_class_parsing(value: Any, expected: bool) -> None:
    parsed = ClassSet().parse(value)
    assert parsed is expected


@pytest.mark.parametrize("value", [2, -1, 1.0, "yes", "", None, [1], "fraud"])
def test_binary_class_rejections(value: Any) -> None:
    with pytest.raises(InvalidMessage) as info:
        ClassSet().parse(value)
    assert info.value.reason == "unknown_class"


def test_multiclass_parsing() -> None:
    classes = ClassSet(["a", "b", "c"])
    assert not classes.binary and len(classes) == 3
    assert classes.classes == ["a", "b", "c"]
    assert [classes.parse(v) for v in ("a", "b", "c")] == ["a", "b", "c"]
    for bad in ("d", "A", True, None, 1.5):
        with pytest.raises(InvalidMessage, match="unknown_class"):
            classes.parse(bad)
    numeric = ClassSet(["0", "1", "2"])
    assert numeric.parse(2) == "2" and numeric.parse("0") == "0"
    with pytest.raises(InvalidMessage):
        numeric.parse(False)  # a boolean is not the class "0"


def test_binary_classset_defaults_and_names() -> None:
    classes = ClassSet()
    assert classes.binary and classes.classes == [False, True] and len(classes) == 2
    assert [ClassSet.name(c) for c in classes.classes] == ["false", "true"]
    assert ClassSet.name("fraud") == "fraud"
    named = ClassSet(["legit", "fraud"])
    assert not named.binary and named.classes[-1] == "fraud"
    assert named.parse("legit") == "legit"
    with pytest.raises(InvalidMessage):
        named.parse(True)


@pytest.mark.parametrize("names", [["a"], ["a", "a"], ["a", "b", "a"]])
def test_bad_class_sets(names: list[str]) -> None:
    with pytest.raises(ValueError):
        ClassSet(names)


# --- labels ------------------------------------------------------------------------------------


def test_label_from_bytes_and_from_a_mapping() -> None:
    raw = (
        b'{"event_id": "e1", "label": "true", "source": "chargeback",'
        b' "labelled_at": "2018-04-01T00:00:31Z", "event": {"event_id": "e1", "amount": 3}}'
    )
    label = decode_label(raw, ClassSet())
    assert label == Label("e1", True, "chargeback", 1522540831.0, {"event_id": "e1", "amount": 3})
    plain = decode_label({"event_id": 7, "label": 0}, ClassSet())
    assert plain == Label("7", False, "reviewer", None, None)


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"{", "not_json"),
        (b'{"event_id": "e\xff"}', "not_json"),
        (b"[]", "not_object"),
        ({"label": True}, "missing_id"),
        ({"event_id": True, "label": True}, "bad_type"),
        ({"event_id": "e1"}, "bad_value"),
        ({"event_id": "e1", "label": "maybe"}, "unknown_class"),
        ({"event_id": "e1", "label": 2}, "unknown_class"),
        ({"event_id": "e1", "label": True, "source": 5}, "bad_type"),
        ({"event_id": "e1", "label": True, "source": ""}, "bad_type"),
        ({"event_id": "e1", "label": True, "source": "s" * 33}, "bad_type"),
        ({"event_id": "e1", "label": True, "labelled_at": "soon"}, "bad_value"),
        ({"event_id": "e1", "label": True, "labelled_at": 1e300}, "bad_value"),
        ({"event_id": "e1", "label": True, "labelled_at": False}, "bad_type"),
        ({"event_id": "e1", "label": True, "event": [1]}, "bad_type"),
        ({"event_id": "e1", "label": True, "event": "e1"}, "bad_type"),
    ],
)
def test_label_rejections(body: Any, reason: str) -> None:
    with pytest.raises(InvalidMessage) as info:
        decode_label(body, ClassSet())
    assert info.value.reason == reason


def test_label_oversize_and_multiclass() -> None:
    with pytest.raises(InvalidMessage, match="oversize"):
        decode_label(b'{"event_id": "e1", "label": 1}', ClassSet(), max_bytes=10)
    label = decode_label(b'{"event_id": "e1", "label": "b"}', ClassSet(["a", "b", "c"]))
    assert label.label == "b"
    assert decode_label({"event_id": "e1", "label": "s" * 0 + "1"}, ClassSet()).label is True


# --- review requests (the reviews topic, read back by every replica) ---------------------------


def _review(**change: Any) -> dict[str, Any]:
    txn = decode_transaction(b'{"event_id": "r1", "amount": 12.5, "online": true}', SCHEMA)
    body = json.loads(
        review_message(txn, {"true": 0.75, "false": 0.25}, True, "exploit", 0.5, 0.8, 3, 1e9)
    )
    body.update(change)
    return {k: v for k, v in body.items() if v is not None}


def test_a_review_request_reads_back_as_it_was_written() -> None:
    item = decode_review(json.dumps(_review()), ClassSet())
    assert item.event_id == "r1"
    assert item.features == {"amount": 12.5, "online": 1.0}
    assert item.proba == {True: 0.75, False: 0.25}
    assert item.predicted is True
    assert (item.reason, item.probability, item.model_version) == ("exploit", 0.5, 3)
    assert item.requested_at == 1e9
    assert item.event == {"event_id": "r1", "amount": 12.5, "online": True}


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"{", "not_json"),
        (b"[1]", "not_object"),
        (json.dumps(_review(event_id="")).encode(), "bad_type"),
        (
            json.dumps({k: v for k, v in _review().items() if k != "event_id"}).encode(),
            "missing_id",
        ),
        (json.dumps({k: v for k, v in _review().items() if k != "features"}).encode(), "bad_type"),
        (json.dumps(_review(probabilities=[0.5, 0.5])).encode(), "bad_type"),
        (json.dumps(_review(features={"amount": "lots"})).encode(), "bad_value"),
        (json.dumps(_review(features={"amount": None})).encode(), "bad_value"),
        (json.dumps(_review(features={"amount": "inf"})).encode(), "bad_value"),
        (json.dumps(_review(features={"amount": "12.5"})).encode(), "bad_value"),
        (json.dumps(_review(features={"amount": 1e400})).encode(), "bad_value"),
        (json.dumps(_review(probabilities={"maybe": 1.0})).encode(), "unknown_class"),
        (json.dumps(_review(predicted="maybe")).encode(), "unknown_class"),
        (json.dumps(_review(model_version="v3")).encode(), "bad_value"),
        (json.dumps(_review(requested_at="soon")).encode(), "bad_value"),
        (json.dumps(_review(pad="x" * 2000)).encode(), "oversize"),
    ],
)
def test_review_rejections(raw: bytes, reason: str) -> None:
    with pytest.raises(InvalidMessage) as info:
        decode_review(raw, ClassSet(), max_bytes=1000)
    assert info.value.reason == reason


@given(st.binary(max_size=400))
def test_arbitrary_bytes_on_the_reviews_topic_raise_only_invalid_message(raw: bytes) -> None:
    try:
        decode_review(raw, ClassSet())
    except InvalidMessage as exc:
        assert exc.reason in REASONS


# --- times -------------------------------------------------------------------------------------


def test_parse_time_forms() -> None:
    assert parse_time(None) is None
    assert parse_time(1522540831) == 1522540831.0
    assert parse_time(1522540831.25) == 1522540831.25
    assert parse_time("2018-04-01T00:00:31Z") == 1522540831.0
    assert parse_time("2018-04-01T00:00:31") == 1522540831.0  # naive means UTC
    assert parse_time("2018-04-01T02:00:31+02:00") == 1522540831.0
    assert parse_time("2018-04-01") == 1522540800.0
    for bad in ("", "2018-13-01", "tomorrow"):
        with pytest.raises(InvalidMessage, match="bad_value"):
            parse_time(bad)
    for wrong in (True, [1], {"t": 1}):
        with pytest.raises(InvalidMessage, match="bad_type"):
            parse_time(wrong)


def test_to_iso_format() -> None:
    assert to_iso(1522540831.5) == "2018-04-01T00:00:31.500Z"
    assert to_iso(0) == "1970-01-01T00:00:00.000Z"
    assert to_iso(-1.25) == "1969-12-31T23:59:58.750Z"


@given(
    st.datetimes(
        min_value=datetime(1900, 1, 1), max_value=datetime(2200, 1, 1), timezones=st.just(UTC)
    )
)
def test_iso_round_trip(moment: datetime) -> None:
    moment = moment.replace(microsecond=moment.microsecond // 1000 * 1000)
    text = moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    assert to_iso(parse_time(text)) == text  # type: ignore[arg-type]


@given(st.integers(min_value=-(10**12), max_value=10**13))
def test_epoch_millis_round_trip(millis: int) -> None:
    ts = millis / 1000
    try:
        parsed = parse_time(ts)
    except InvalidMessage:
        assert not datetime(1, 1, 1, tzinfo=UTC).timestamp() <= ts < 253402300800
        return
    assert parsed is not None
    again = parse_time(to_iso(parsed))  # every accepted time can be written back
    assert again is not None and abs(again - ts) < 0.0011


@given(st.one_of(st.floats(), st.integers(), st.text(max_size=40)))
def test_accepted_times_can_always_be_written(value: Any) -> None:
    try:
        ts = parse_time(value)
    except InvalidMessage:
        return
    assert ts is not None and math.isfinite(ts)
    to_iso(ts)  # must not raise


def test_time_range_edges() -> None:
    first = datetime(1, 1, 1, tzinfo=UTC).timestamp()
    last = (
        datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC) + timedelta(milliseconds=999)
    ).timestamp()
    assert parse_time(first) == first
    assert parse_time(last) == pytest.approx(last)
    assert to_iso(first) == "0001-01-01T00:00:00.000Z"
    with pytest.raises(InvalidMessage, match="bad_value"):
        parse_time(first - 1)
    with pytest.raises(InvalidMessage, match="bad_value"):
        parse_time(last + 1)


# --- nothing but InvalidMessage ever escapes ---------------------------------------------------

lone_surrogates = st.characters(categories=["Cs"])
keys = st.one_of(st.sampled_from(["event_id", "timestamp", "amount", "mcc"]), st.text(max_size=8))
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.sampled_from([10**400, -(10**400)]),
    st.floats(),
    st.text(max_size=12),
    st.text("xé", min_size=250, max_size=260),  # around the length limit
    st.text(lone_surrogates, min_size=1, max_size=3),
)
json_values = st.one_of(
    scalars,
    st.lists(scalars, max_size=3),
    st.dictionaries(st.text(max_size=4), scalars, max_size=3),
)


def _check_transaction(raw: bytes | str, schema: TransactionSchema) -> None:
    try:
        txn = decode_transaction(raw, schema, max_bytes=4096)
    except InvalidMessage as exc:
        assert exc.reason in REASONS
        return
    # What gets through is safe to use downstream: a Kafka key, finite features, a writable time.
    txn.event_id.encode()
    assert 0 < len(txn.event_id) <= 256 or txn.event_id.lstrip("-").isdigit()
    assert all(isinstance(v, float) and math.isfinite(v) for v in txn.features.values())
    assert len(txn.features) <= schema.max_features
    if txn.timestamp is not None:
        to_iso(txn.timestamp)


@given(st.binary(max_size=600))
def test_arbitrary_bytes_raise_only_invalid_message(raw: bytes) -> None:
    _check_transaction(raw, TransactionSchema(max_features=5))
    try:
        decode_label(raw, ClassSet())
    except InvalidMessage as exc:
        assert exc.reason in REASONS


@given(st.dictionaries(keys, json_values, max_size=8))
def test_arbitrary_json_objects_raise_only_invalid_message(event: dict[str, Any]) -> None:
    raw = json.dumps(event).encode()  # NaN/Infinity and lone surrogates (escaped) included
    _check_transaction(raw, TransactionSchema(max_features=5))
    body = {"event_id": event.get("event_id"), "label": event.get("amount"), **event}
    for source in (raw, body):
        try:
            label = decode_label(source, ClassSet(["a", "b"]))
        except InvalidMessage as exc:
            assert exc.reason in REASONS
        else:
            label.event_id.encode()
