"""The door to one patient's timeline: the record's entries as one chronological list across its sections.

The timeline is another page of the same record, so it is decided exactly as the record page is (a view-record
access, the same decision) and audited as one, the event's query and reason naming the timeline. Always holds: an
`AccessEvent` is committed for every opening, allowed, denied or not found, before anything is returned; the page
is built only after the decision allows it, and what it shows (sections and partners) lands on that event.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import TypeVar

from django.http import HttpRequest

from consent.policy import Action, Decision
from records.access import PatientAccess, User, get_patient_for_user
from records.disclosure import Shown
from records.models import Patient

T = TypeVar("T")

# How the timeline is named on its access events.
TIMELINE = "timeline"


def patient_timeline_open(
    *,
    user: User,
    public_id: uuid.UUID | str,
    request: HttpRequest | None,
    build: Callable[[Patient, Decision], tuple[T, Shown]],
) -> PatientAccess[T]:
    """Open one patient's timeline for this user: decide as for the record page, build, audit, then return.

    Raises `PatientNotFound` (a `RecordWithheld` when the patient's objection alone withholds the record) after
    the refusal's event is committed, exactly as `records.access.get_patient_for_user` does.
    """
    return get_patient_for_user(
        user=user, public_id=public_id, request=request, build=build, action=Action.VIEW_RECORD, view=TIMELINE
    )
