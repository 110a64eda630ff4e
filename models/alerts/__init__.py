"""Alerts: rows in an outbox, written in the transaction of the change that causes them, and
delivered later by ``worker.alerting``. One module per job:

* :mod:`.kinds` — what an alert can be about, each kind with its message text and severity
  (adding a kind is one member there);
* :mod:`.outbox` — raising an alert (deduplicated) and listing them;
* :mod:`.stuck` — raising ``stuck`` alerts for links in flight too long;
* :mod:`.grouping` — rolling bursts of one kind into digest rows;
* :mod:`.states` — the delivery states of a row, and :mod:`.delivery` — claiming, finishing
  and retrying rows;
* :mod:`.messages` — the text and JSON a row is delivered as.

This package module imports none of them: :mod:`models.statemachine` imports :mod:`.kinds`,
and some of the others import the state machine, which would make a circle.
"""
