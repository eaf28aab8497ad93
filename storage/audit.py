"""The audit log: who changed what, for admins."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlmodel import Session

from storage.models import AuditEntry


def record(
    session: Session,
    *,
    at: datetime,
    actor_id: int | None,
    action: str,
    subject: str = "",
    **detail: Any,
) -> None:
    session.add(AuditEntry(at=at, actor_id=actor_id, action=action, subject=subject, detail=detail))
