"""Pet Owner Care's audit trail, readable under a permission of its own."""

from __future__ import annotations

from clinics.models import AuditEvent

CARE_LOG_PERMISSION = "view_care_log"


class CareLogEntry(AuditEvent):
    """Pet Owner Care's audit trail (searches, clients opened, owner-requested changes).

    A proxy, so that reading the trail is a permission of its own: Pet Owner Care leads hold
    ``records.view_care_log``, granted per user (or through a group) in the admin.
    """

    class Meta:
        proxy = True
        default_permissions = ()
        permissions = [("view_care_log", "Can view the Pet Owner Care audit log")]
        verbose_name = "Pet Owner Care log entry"
        verbose_name_plural = "Pet Owner Care log"
