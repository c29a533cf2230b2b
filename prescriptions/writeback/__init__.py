"""WriteBack: the outbox rows written with each change, and their delivery to the PIMS.

``outbox`` writes the rows inside the caller's transaction; ``delivery`` sends ezyVet's rows;
``feed`` hands the agents theirs; ``incidents`` handles failed rows, alerts and counts.
Import from here.
"""

from __future__ import annotations

from prescriptions.writeback.delivery import (
    SWEEP_GRACE,
    Delivery,
    writeback_deliver,
    writeback_due,
    writeback_waiting_for,
)
from prescriptions.writeback.feed import FEED_PAGE, AckError, agent_ack, agent_feed
from prescriptions.writeback.incidents import (
    DismissError,
    RetryError,
    incidents_unalerted,
    writeback_counts,
    writeback_dismiss,
    writeback_incident_alert,
    writeback_retry,
)
from prescriptions.writeback.outbox import (
    eligible_items,
    prescription_link,
    was_prescribed_to_pims,
    writeback_dispense_enqueue,
    writeback_end_enqueue,
    writeback_prescribe_enqueue,
    writeback_return_enqueue,
    writeback_target,
)

__all__ = [
    "FEED_PAGE",
    "SWEEP_GRACE",
    "AckError",
    "Delivery",
    "DismissError",
    "RetryError",
    "agent_ack",
    "agent_feed",
    "eligible_items",
    "incidents_unalerted",
    "prescription_link",
    "was_prescribed_to_pims",
    "writeback_counts",
    "writeback_deliver",
    "writeback_dismiss",
    "writeback_dispense_enqueue",
    "writeback_due",
    "writeback_end_enqueue",
    "writeback_incident_alert",
    "writeback_prescribe_enqueue",
    "writeback_retry",
    "writeback_return_enqueue",
    "writeback_target",
    "writeback_waiting_for",
]
