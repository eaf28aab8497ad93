"""The audit log: who changed what, for admins."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import insert
from sqlmodel import Session

from storage.models import AuditEntry

# Built once and run on the unit of work's connection, not an object for the session to flush:
# nearly every change records a line, on the hot paths too.
_RECORD = insert(AuditEntry)


def record(
    session: Session,
    *,
    at: datetime,
    actor_id: int | None,
    action: str,
    subject: str = "",
    **detail: Any,
) -> None:
    entry = {"at": at, "actor_id": actor_id, "action": action, "subject": subject, "detail": detail}
    session.connection().execute(_RECORD, entry)
