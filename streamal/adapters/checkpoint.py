"""Checkpoints: the learner and its topic positions, written atomically and signed.

A checkpoint is one unit: the model, the gate and budget state, the pending store, and the
positions in the reviews and labels topics up to which all of that is current. Restoring it and
replaying both topics from those positions rebuilds exactly the state before a crash: labels
learned after the checkpoint are learned again into a model that had not seen them, so every
label is learned once, and review requests made after it come back from the reviews topic.

A pickled model is code, so a checkpoint is signed (HMAC-SHA256 with a key the operator holds)
and verified *before* anything is unpickled; a file that is truncated, corrupt, unsigned or
signed with another key is refused with a message that says which.

File format: ``MAGIC`` (14 bytes) · HMAC (32 bytes) · payload length (8 bytes, big endian) ·
payload (pickle). The HMAC covers the magic, the length and the payload.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import pickle
import struct
import tempfile
import time
from pathlib import Path
from typing import Any, Protocol

__all__ = [
    "CheckpointError",
    "CheckpointStore",
    "DirectoryStore",
    "dumps",
    "loads",
]

MAGIC = b"STREAMAL-CKPT\x01"
_HEADER = len(MAGIC) + 32 + 8
_TEMP_PREFIX = ".checkpoint-"
#: A temporary file untouched for this long was left by a writer that died before its rename;
#: a write in progress (seconds) is far younger, even another replica's on a shared volume.
STALE_TEMP_SECONDS = 600.0


class CheckpointError(RuntimeError):
    """A checkpoint that must not be loaded; the message says why and what to do."""


class CheckpointStore(Protocol):
    """Where checkpoints live: a directory today, object storage behind the same two calls."""

    def read(self) -> bytes | None:
        """The latest checkpoint's bytes, or None when there is none."""
        ...

    def write(self, blob: bytes) -> None:
        """Replace the checkpoint atomically: readers see the old one or the new one, whole."""
        ...


def _mac(key: bytes, length: bytes, payload: bytes) -> bytes:
    return hmac.new(key, MAGIC + length + payload, hashlib.sha256).digest()


def dumps(state: Any, key: bytes) -> bytes:
    """Pickle and sign ``state``.

    >>> loads(dumps({"labels": 3}, b"k"), b"k")
    {'labels': 3}
    """
    payload = pickle.dumps(state, protocol=pickle.HIGHEST_PROTOCOL)
    length = struct.pack(">Q", len(payload))
    return MAGIC + _mac(key, length, payload) + length + payload


def loads(blob: bytes, key: bytes) -> Any:
    """Verify the signature, then unpickle; raises :class:`CheckpointError` otherwise.

    >>> blob = dumps([1, 2], b"right key")
    >>> loads(blob, b"wrong key")
    Traceback (most recent call last):
    ...
    streamal.adapters.checkpoint.CheckpointError: checkpoint signature does not match: ...
    """
    if len(blob) < _HEADER or not blob.startswith(MAGIC):
        if blob and (MAGIC.startswith(blob) or blob.startswith(MAGIC)):
            raise CheckpointError(
                "checkpoint is truncated (shorter than its header); start with --reset-state to "
                "discard it"
            )
        raise CheckpointError(
            "not a signed streamal checkpoint (unknown or missing header); start with "
            "--reset-state to discard it"
        )
    mac = blob[len(MAGIC) : len(MAGIC) + 32]
    length = blob[len(MAGIC) + 32 : _HEADER]
    payload = blob[_HEADER:]
    (expected,) = struct.unpack(">Q", length)
    if len(payload) != expected:
        raise CheckpointError(
            f"checkpoint is truncated or padded: {len(payload)} payload bytes, header says "
            f"{expected}; start with --reset-state to discard it"
        )
    if not hmac.compare_digest(mac, _mac(key, length, payload)):
        raise CheckpointError(
            "checkpoint signature does not match: the file is corrupt, was tampered with, or "
            "was signed with another key (STREAMAL_CHECKPOINT_KEY); start with --reset-state "
            "to discard it"
        )
    try:
        return pickle.loads(payload)  # noqa: S301 - verified above: written by a key holder
    except (AttributeError, ImportError, pickle.UnpicklingError, EOFError, TypeError) as exc:
        # Signed by a key holder but not loadable here: another version of streamal pickled a
        # class (or a module) that this one lacks, after a rollback say.
        raise CheckpointError(
            f"checkpoint verifies but was written by another version of streamal and does not "
            f"load with this one ({type(exc).__name__}: {exc}); start with --reset-state to "
            "discard it"
        ) from exc


class DirectoryStore:
    """Checkpoints in a directory (a Kubernetes volume): ``checkpoint.bin``, replaced atomically.

    The new file is written beside the old one, flushed and fsynced, renamed over it, and the
    directory is fsynced, so a crash at any moment leaves either the old or the new checkpoint.
    A crash before the rename leaves the temporary file; the next writes remove such files once
    they are stale, so crashes do not fill the volume.
    """

    name = "checkpoint.bin"

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = Path(directory)
        self.path = self.directory / self.name

    def __repr__(self) -> str:
        return f"DirectoryStore({str(self.directory)!r})"

    def read(self) -> bytes | None:
        try:
            return self.path.read_bytes()
        except FileNotFoundError:
            return None

    def write(self, blob: bytes) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        self._remove_stale_temporaries()
        fd, tmp = tempfile.mkstemp(prefix=_TEMP_PREFIX, dir=self.directory)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(blob)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        dir_fd = os.open(self.directory, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)

    def _remove_stale_temporaries(self) -> None:
        cutoff = time.time() - STALE_TEMP_SECONDS
        for path in self.directory.glob(_TEMP_PREFIX + "*"):
            try:
                if path.stat().st_mtime < cutoff:
                    path.unlink()
            except OSError:  # gone meanwhile (renamed by its writer), or not ours to remove
                pass
