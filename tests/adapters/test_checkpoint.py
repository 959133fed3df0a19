"""Checkpoints: signed, atomic, refused when they do not verify, restored whole."""

from __future__ import annotations

import os
import pickle
import struct
import time
from pathlib import Path

import pytest

from streamal.adapters import checkpoint
from streamal.adapters.checkpoint import CheckpointError, DirectoryStore
from streamal.config import Settings
from streamal.core.messages import TransactionSchema, decode_transaction, encode
from streamal.core.strategies import BalancedQuantile
from streamal.core.synthetic import drifting_transactions
from streamal.service import Service, gate_settings

KEY = b"test-key"


def test_round_trip() -> None:
    state = {"positions": {"labels": {0: 12}}, "numbers": list(range(100))}
    assert checkpoint.loads(checkpoint.dumps(state, KEY), KEY) == state


@pytest.mark.parametrize("where", [0, 20, 50, -1])
def test_one_flipped_byte_anywhere_is_refused(where: int) -> None:
    blob = bytearray(checkpoint.dumps({"a": 1}, KEY))
    blob[where] ^= 0x01
    with pytest.raises(CheckpointError):
        checkpoint.loads(bytes(blob), KEY)


def test_reasons_are_told_apart() -> None:
    blob = checkpoint.dumps({"a": 1}, KEY)
    with pytest.raises(CheckpointError, match="signature does not match.*--reset-state"):
        checkpoint.loads(blob, b"another key")
    with pytest.raises(CheckpointError, match="truncated"):
        checkpoint.loads(blob[:-3], KEY)
    with pytest.raises(CheckpointError, match="truncated"):
        checkpoint.loads(blob[:10], KEY)
    with pytest.raises(CheckpointError, match="not a signed streamal checkpoint"):
        checkpoint.loads(pickle.dumps({"a": 1}), KEY)  # an unsigned pickle


def test_nothing_is_unpickled_before_the_signature_checks(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"

    class Exploit:
        def __reduce__(self) -> tuple[object, tuple[str]]:
            return (os.system, (f"touch {marker}",))

    blob = checkpoint.dumps(Exploit(), b"attacker's key")
    with pytest.raises(CheckpointError):
        checkpoint.loads(blob, KEY)
    assert not marker.exists()


def test_directory_store_replaces_atomically(tmp_path: Path) -> None:
    store = DirectoryStore(tmp_path / "state")
    assert store.read() is None
    store.write(b"one")
    store.write(b"two")
    assert store.read() == b"two"
    assert [p.name for p in (tmp_path / "state").iterdir()] == ["checkpoint.bin"]


def _settings(tmp_path: Path, **extra: object) -> Settings:
    return Settings(checkpoint_dir=str(tmp_path), checkpoint_key="k", **extra)  # type: ignore[arg-type]


def test_service_round_trips_its_learner(tmp_path: Path) -> None:
    service = Service(_settings(tmp_path))
    schema = TransactionSchema()
    for event, _ in drifting_transactions(300, seed=3):
        service.learner.score(decode_transaction(encode(event), schema))
    service._positions = {"labels": {0: 7}, "reviews": {0: 9}}
    assert service.checkpoint()
    restored = Service(_settings(tmp_path))
    restored._restore()
    assert restored._positions == {"labels": {0: 7}, "reviews": {0: 9}}
    assert len(restored.learner.pending) == len(service.learner.pending) > 0
    assert restored.learner.gate.threshold == service.learner.gate.threshold
    probe = decode_transaction(encode(next(drifting_transactions(1, seed=9))[0]), schema)
    assert restored.learner.model.predict_proba_one(
        probe.features
    ) == service.learner.model.predict_proba_one(probe.features)


def _scored(service: Service, n: int = 300) -> Service:
    schema = TransactionSchema()
    for event, _ in drifting_transactions(n, seed=3):
        service.learner.score(decode_transaction(encode(event), schema))
    return service


def test_a_changed_strategy_rebuilds_the_gate_and_keeps_the_model(tmp_path: Path) -> None:
    service = _scored(Service(_settings(tmp_path, strategy="variable")))
    assert service.checkpoint()
    restored = Service(_settings(tmp_path, strategy="balanced"))
    restored._restore()
    lane = restored.learner.gate.lanes[-1]
    assert isinstance(lane.strategy, BalancedQuantile)  # the settings' strategy, not the saved
    assert restored.learner.gate.budget.fraction == service.learner.gate.budget.fraction
    assert len(restored.learner.pending) == len(service.learner.pending) > 0
    assert restored.learner.model.n_learned == service.learner.model.n_learned
    # The rebuilt gate's backlog cap and scorers read the restored queue and model.
    probe = decode_transaction(
        encode(next(drifting_transactions(1, seed=9))[0]), TransactionSchema()
    )
    assert restored.learner.score(probe).decision is not None


def test_a_checkpoint_without_gate_settings_gets_a_new_gate(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A checkpoint of an older format: its pickled gate may lack what this version needs."""
    service = _scored(Service(_settings(tmp_path)))
    old = {"format": 1, "learner": service.learner, "positions": {}}
    (tmp_path / "checkpoint.bin").write_bytes(checkpoint.dumps(old, b"k"))
    restored = Service(_settings(tmp_path))
    with caplog.at_level("INFO", logger="streamal"):
        restored._restore()
    assert "gate rebuilt from the settings (checkpoint format 1, " in caplog.text
    assert "changed: alert_cards_per_day, " in caplog.text
    fresh, saved = restored.learner.gate.lanes[-1].strategy, service.learner.gate.lanes[-1].strategy
    assert isinstance(fresh, BalancedQuantile) and isinstance(saved, BalancedQuantile)
    # A new gate (its head start untouched), not the saved one.
    assert fresh.advance == fresh.tolerance > saved.advance
    assert len(restored.learner.pending) == len(service.learner.pending) > 0


def test_another_format_with_the_same_settings_gets_a_new_gate(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A class changed its attributes (the format was bumped), the settings did not."""
    service = _scored(Service(_settings(tmp_path)))
    state = {
        "format": 999,
        "learner": service.learner,
        "positions": {},
        "gate_settings": gate_settings(service.settings),
    }
    (tmp_path / "checkpoint.bin").write_bytes(checkpoint.dumps(state, b"k"))
    restored = Service(_settings(tmp_path))
    with caplog.at_level("INFO", logger="streamal"):
        restored._restore()
    assert "checkpoint format 999" in caplog.text and "changed: none" in caplog.text
    fresh = restored.learner.gate.lanes[-1].strategy
    assert isinstance(fresh, BalancedQuantile) and fresh.advance == fresh.tolerance  # a new gate


def test_the_same_settings_keep_the_saved_gate(tmp_path: Path) -> None:
    service = _scored(Service(_settings(tmp_path)))
    assert service.checkpoint()
    restored = Service(_settings(tmp_path))
    restored._restore()
    kept, saved = restored.learner.gate.lanes[-1].strategy, service.learner.gate.lanes[-1].strategy
    assert isinstance(kept, BalancedQuantile) and isinstance(saved, BalancedQuantile)
    assert (kept.balance, kept.advance) == (saved.balance, saved.advance)
    assert kept.advance < kept.tolerance  # the saved gate, which has seen events


def test_service_refuses_a_tampered_checkpoint_unless_reset(tmp_path: Path) -> None:
    Service(_settings(tmp_path)).checkpoint()
    path = tmp_path / "checkpoint.bin"
    blob = bytearray(path.read_bytes())
    blob[len(blob) // 2] ^= 0xFF
    path.write_bytes(bytes(blob))
    with pytest.raises(CheckpointError, match="signature does not match"):
        Service(_settings(tmp_path)).start()
    fresh = Service(_settings(tmp_path, reset_state=True))
    fresh._restore()  # starts fresh instead of refusing
    assert fresh.learner.model.n_learned == 0


def test_a_checkpoint_for_another_model_is_refused(tmp_path: Path) -> None:
    Service(_settings(tmp_path)).checkpoint()
    with pytest.raises(CheckpointError, match="model logreg.*settings say gnb"):
        Service(_settings(tmp_path, model="gnb"))._restore()


def test_checkpoints_need_a_key(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="STREAMAL_CHECKPOINT_KEY"):
        Service(Settings(checkpoint_dir=str(tmp_path)))
    key_file = tmp_path / "key"
    key_file.write_text("from-a-secret\n")
    service = Service(Settings(checkpoint_dir=str(tmp_path), checkpoint_key_file=str(key_file)))
    assert service._key == b"from-a-secret"


def test_learning_weights_come_from_the_settings_and_class_counts_are_kept(
    tmp_path: Path,
) -> None:
    service = _scored(Service(_settings(tmp_path)))
    for y in (False, False, True):
        service.learner.class_balance.learn_one(y)
    assert service.checkpoint()
    restored = Service(_settings(tmp_path, class_balance=0.5, source_weights=["chargeback=0.25"]))
    restored._restore()
    assert restored.learner.class_balance.power == 0.5
    assert restored.learner.class_balance.counts == {False: 2, True: 1}
    assert restored.learner.source_weights == {"chargeback": 0.25}


def test_a_checkpoint_from_before_class_counts_starts_counting(tmp_path: Path) -> None:
    service = _scored(Service(_settings(tmp_path)))
    del service.learner.class_balance  # as pickled by a version without it
    assert service.checkpoint()
    restored = Service(_settings(tmp_path, class_balance=0.5))
    restored._restore()
    assert restored.learner.class_balance.power == 0.5
    assert restored.learner.class_balance.counts == {}


def test_reading_and_queue_settings_come_from_the_settings_not_the_checkpoint(
    tmp_path: Path,
) -> None:
    """How transactions are read (id, time, feature fields) and how long requests stay open are
    settings: a restart with new values must use them, as it does for the gate. Before, the
    restored learner kept the checkpoint's, so a changed STREAMAL_ID_FIELD dead-lettered every
    transaction as missing_id and a changed pending_ttl_seconds was ignored."""
    service = _scored(Service(_settings(tmp_path, pending_max_items=50, pending_ttl_seconds=60)))
    open_before = len(service.learner.pending)
    assert service.checkpoint()
    restored = Service(
        _settings(
            tmp_path,
            pending_max_items=5000,
            pending_ttl_seconds=3600,
            id_field="txn_id",
            time_field="ts",
            exclude=["note"],
        )
    )
    from_settings = restored.learner.schema
    restored._restore()
    learner = restored.learner
    assert learner.model.n_learned == service.learner.model.n_learned  # the state is kept
    assert len(learner.pending) == open_before > 0
    assert (learner.pending.max_items, learner.pending.ttl_seconds) == (5000, 3600)
    assert learner.schema == from_settings
    txn = decode_transaction(encode({"txn_id": "t1", "ts": 1.0, "amount": 3.0}), learner.schema)
    assert txn.event_id == "t1"


def test_card_features_follow_the_settings_and_keep_their_state_when_unchanged(
    tmp_path: Path,
) -> None:
    """Turning card features on (or off, or changing their windows) at a restart takes effect;
    with the same feature settings the rolling windows' state is kept."""
    assert Service(_settings(tmp_path)).checkpoint()  # saved without card features
    on = Service(_settings(tmp_path, card_field="card"))
    on._restore()
    assert on.learner.features is not None and on.learner.card_field == "card"
    assert on.learner.features.spec.card_field == "card"
    on.learner.score(
        decode_transaction(
            encode({"event_id": "e1", "card": "c1", "terminal_id": "t", "amount": 5.0}),
            on.learner.schema,
        )
    )
    assert on.checkpoint()
    same = Service(_settings(tmp_path, card_field="card"))
    same._restore()
    assert same.learner.features is not None
    assert pickle.dumps(same.learner.features) == pickle.dumps(on.learner.features)
    off = Service(_settings(tmp_path))
    off._restore()
    assert off.learner.features is None and off.learner.card_field is None


def test_an_unreadable_checkpoint_is_refused_clearly_and_reset_state_ignores_it(
    tmp_path: Path,
) -> None:
    """--reset-state ignores an existing "(or unreadable)" checkpoint: it must not read the file
    at all. Without it, a checkpoint that cannot be read is refused as a CheckpointError that
    names the file, like one that does not verify. (A directory in the checkpoint's place stands
    in for any read error: as root, file modes do not stop a read.)"""
    (tmp_path / DirectoryStore.name).mkdir()
    with pytest.raises(CheckpointError, match="cannot be read.*checkpoint.bin.*--reset-state"):
        Service(_settings(tmp_path))._restore()
    fresh = Service(_settings(tmp_path, reset_state=True))
    fresh._restore()  # starts fresh instead of failing on the read
    assert fresh.learner.model.n_learned == 0


class _BrokenVolume:
    """A checkpoint store on a volume that refuses writes (full, read-only, gone)."""

    def __init__(self) -> None:
        self.writes = 0

    def read(self) -> bytes | None:
        return None

    def write(self, blob: bytes) -> None:
        self.writes += 1
        raise OSError(28, "No space left on device")


def test_a_failing_checkpoint_is_retried_after_the_interval_not_every_second(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Each attempt pickles the whole learner under the model's lock (seconds, with a full
    review queue), stopping the scoring meanwhile, and logs a traceback. Before, a volume that
    refused writes made every housekeeping round (once a second) try again."""
    service = Service(_settings(tmp_path, checkpoint_interval_seconds=0.3))
    volume = _BrokenVolume()
    service._store = volume
    service._labels_since_checkpoint = 10_000  # due by labels, and stays due
    with caplog.at_level("ERROR", logger="streamal"):
        for _ in range(3):
            service._housekeeping()
    assert volume.writes == 1
    assert caplog.text.count("checkpoint could not be written") == 1
    time.sleep(0.35)
    service._housekeeping()
    assert volume.writes == 2  # tried again once the interval passed


def test_temporary_files_left_by_a_crash_are_removed(tmp_path: Path) -> None:
    """A kill between creating the temporary file and renaming it leaves the file behind (as
    big as a checkpoint, tens of MB with a full review queue); every such crash added one, until
    the volume filled up. Later writes remove the stale ones, but never a fresh one, which may
    be another writer's in progress."""
    store = DirectoryStore(tmp_path)
    stale = tmp_path / ".checkpoint-crashed"
    stale.write_bytes(b"half a checkpoint")
    old = time.time() - 3600
    os.utime(stale, (old, old))
    fresh = tmp_path / ".checkpoint-in-progress"
    fresh.write_bytes(b"being written")
    store.write(b"one")
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        ".checkpoint-in-progress",
        "checkpoint.bin",
    ]
    assert store.read() == b"one"


def test_after_a_restart_the_last_checkpoint_is_the_restored_one(tmp_path: Path) -> None:
    """streamal_checkpoint_last_success_timestamp_seconds is the last durable checkpoint: after a
    restart that is the one restored, until a new one is written. Before, it read 0 (which the
    StreamalCheckpointStale alert ignores), so a replica restarted onto a volume that had turned
    read-only never wrote a checkpoint again and never alerted."""
    name = "streamal_checkpoint_last_success_timestamp_seconds"
    written = Service(_settings(tmp_path))
    assert written.checkpoint()
    saved_at = written.metrics.registry.get_sample_value(name)
    assert saved_at is not None and 0 < saved_at <= time.time()
    restored = Service(_settings(tmp_path))
    restored._restore()
    assert restored.metrics.registry.get_sample_value(name) == pytest.approx(saved_at, abs=1.0)


@pytest.mark.parametrize("where", ["setting", "file"])
def test_an_empty_checkpoint_key_is_refused(tmp_path: Path, where: str) -> None:
    """A signature under an empty key is one anyone can make, and a checkpoint is unpickled
    (code) once its signature checks: an empty key, say an empty mounted secret, must stop the
    service like a missing one. Before, it was taken and checkpoints were signed with b""."""
    key_file = tmp_path / "key"
    key_file.write_text("\n")
    key = {"checkpoint_key": ""} if where == "setting" else {"checkpoint_key_file": str(key_file)}
    with pytest.raises(CheckpointError, match="empty"):
        Service(Settings(checkpoint_dir=str(tmp_path / "state"), **key))  # type: ignore[arg-type]


def test_a_signed_checkpoint_this_version_cannot_load_is_refused_clearly() -> None:
    """A checkpoint written by another version of streamal (a class it pickled that this one
    lacks, after a rollback say) verifies but cannot be unpickled: refused as a CheckpointError
    that says so and names --reset-state. Before, the bare AttributeError or
    ModuleNotFoundError stopped the service with no hint."""
    for module, name in (("streamal.core.pending", "NoSuchClass"), ("streamal_gone", "Thing")):
        payload = b"\x80\x04c" + f"{module}\n{name}\n".encode() + b")\x81."
        signed = _signed(payload)
        with pytest.raises(CheckpointError, match="another version.*--reset-state"):
            checkpoint.loads(signed, KEY)


def _signed(payload: bytes) -> bytes:
    """A checkpoint with ``payload`` as its pickle, signed with KEY as dumps would."""
    length = struct.pack(">Q", len(payload))
    return checkpoint.MAGIC + checkpoint._mac(KEY, length, payload) + length + payload
