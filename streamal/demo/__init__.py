"""``streamal demo``: the whole system on one machine, measured end to end.

It starts an embedded broker (unless one is configured), produces a transaction stream whose
ground truth only the demo knows, runs the service and its HTTP app, and answers review requests
with a simulated reviewer. By default the stream is the card-fraud simulator
(:mod:`streamal.core.simulator`, scaled down to a few hundred cards and a month), the service
computes its per-card and per-terminal features and uses the ``fraud`` strategy, and every
fraud's label also arrives as a chargeback some simulated days later. What is shown is what a
fraud team judges a detector by: card precision@k per day (k cards reviewed a day), the share
of the day's compromised cards among them, AUC and average precision over the last week, and
the labels spent against the budget. ``--stream synthetic`` runs the older drifting stream of
feature vectors, judged by accuracy and fraud recall per window of events.

Time is compressed: the stream's timestamps are simulated time and the producer sends as fast
as ``--rate`` allows. Chargebacks are due in stream time (sent once the service has scored the
stream past the fraud's time plus ``--chargeback-days``); the reviewer answers in wall-clock
time, so its delay in stream time depends on the rate (the summary says how much it was).

Accuracy is measured honestly: every score read back from the scores topic is joined with the
true label of its event. At the end the same stream is replayed offline through the pure core,
with the same settings and features on the stream's clock: once as the service runs (a
like-for-like check of the live run) and once spending the whole budget at random (the baseline
that active learning has to beat).

The package, one part per module: :mod:`~streamal.demo.options` (the options and the stream),
:mod:`~streamal.demo.live` (the threads around the service), :mod:`~streamal.demo.cards` (the
fraud team's daily figures), :mod:`~streamal.demo.view` (the live display),
:mod:`~streamal.demo.summary` (tables and plots) and :mod:`~streamal.demo.run` (the order of it
all).
"""

from __future__ import annotations

from streamal.demo.cards import CardDays
from streamal.demo.options import configure
from streamal.demo.run import run

__all__ = ["CardDays", "configure", "run"]
