"""The Celery task class: Celery's ``DjangoTask``, with publishing after commit that survives a
broker outage.

``delay_on_commit`` runs after the transaction has committed, so the work is already recorded
(an outbox row, a queued run, an open incident) and a beat sweep finds it again. If the broker
cannot be reached at that moment, raising would only turn a saved change into an error page;
the message is logged as not sent instead and the sweep delivers the work when the broker is
back. Errors of the task itself (eager mode in tests) still propagate.
"""

from __future__ import annotations

import logging
from typing import Any

from celery.contrib.django.task import DjangoTask
from django.db import transaction
from kombu.exceptions import OperationalError

logger = logging.getLogger(__name__)


class OnCommitTask(DjangoTask):
    def delay_on_commit(self, *args: Any, **kwargs: Any) -> None:
        transaction.on_commit(lambda: self._publish(args, kwargs, {}))

    def apply_async_on_commit(self, *args: Any, **kwargs: Any) -> None:
        call_args = args[0] if args else kwargs.pop("args", ())
        call_kwargs = args[1] if len(args) > 1 else kwargs.pop("kwargs", {})
        transaction.on_commit(lambda: self._publish(call_args, call_kwargs, kwargs))

    def _publish(self, args: Any, kwargs: Any, options: dict[str, Any]) -> None:
        try:
            self.apply_async(args, kwargs, **options)
        except OperationalError as exc:
            logger.error(
                "event=task_not_published task=%s args=%s error=%r: the broker is unreachable;"
                " the beat sweep picks the work up when it is back",
                self.name,
                args,
                exc,
            )
