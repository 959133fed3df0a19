"""The simulated reviewer's bookkeeping when the broker fails it, without a broker."""

from __future__ import annotations

import pytest
from kafka.errors import KafkaTimeoutError
from kafka.future import Future

from streamal.config import Settings
from streamal.reviewer import SimulatedReviewer


class _Producer:
    """Acknowledges every record at once; with ``refuse_at``, the send of that record raises
    (as kafka-python's does when topic metadata stays unavailable for max_block_ms)."""

    def __init__(self, refuse_at: int | None = None) -> None:
        self.refuse_at = refuse_at
        self.sent: list[bytes] = []

    def send(self, topic: str, key: bytes, value: bytes) -> Future:
        if len(self.sent) == self.refuse_at:
            self.refuse_at = None
            raise KafkaTimeoutError("metadata not available")
        self.sent.append(key)
        return Future().success(None)

    def flush(self, timeout: float | None = None) -> None:
        pass


def test_answers_sent_before_a_failing_send_are_still_counted() -> None:
    """``outstanding`` must come back to 0 once every request is answered: the demo waits for
    it. Before, when a send raised, the answers already sent in that round were neither
    counted as answered nor sent again, so ``outstanding`` never reached 0."""
    reviewer = SimulatedReviewer(Settings(), {"e1": True, "e2": False, "e3": True}.get, delay=0)
    for event_id in ("e1", "e2", "e3"):
        reviewer._take(f'{{"event_id": "{event_id}", "reason": "uncertainty"}}'.encode())
    producer = _Producer(refuse_at=1)
    reviewer._producer = producer
    with pytest.raises(KafkaTimeoutError):
        reviewer._answer_due()
    reviewer._answer_due()  # the loop's retry
    assert sorted(producer.sent) == [b"e1", b"e2", b"e3"]
    assert (reviewer.answered, reviewer.failed, reviewer.outstanding) == (3, 0, 0)
