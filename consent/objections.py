"""Patients' rights as cases: objections to sharing and subject access requests, from receipt to their end.

What always holds:
- a case is named by a reference that says nothing about the patient (e.g. "OB-7QK2M9ZD"), with no letters a
  patient could misread on a phone (no 0/O, 1/I/L);
- a case is due one calendar month after receipt (the 31st of a shorter month gives its last day), and an
  extension moves the due date with a reason;
- the same submission sent again within `RESUBMIT_WINDOW` is recognised by its fingerprint and not stored twice;
- nothing here says whether a patient exists: a case is matched to a patient only by the IG team.
"""

import hashlib
import json
import secrets
from collections.abc import Iterable
from datetime import date, datetime, timedelta
from typing import Any

from dateutil.relativedelta import relativedelta
from django.db import transaction
from django.utils import timezone

from consent.models import Objection, SubjectAccessRequest
from sharedcare.advisory_locks import submission_lock

OBJECTION_PREFIX = "OB-"
SUBJECT_ACCESS_PREFIX = "SAR-"
# Letters and digits a patient cannot misread when typing a reference from a letter or a phone screen.
_REFERENCE_ALPHABET = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"
_REFERENCE_LENGTH = 8
# A submission identical to one received this recently is the same submission sent twice (a double tap, a retry).
RESUBMIT_WINDOW = timedelta(minutes=30)


def case_reference_new(prefix: str) -> str:
    """A fresh, random case reference such as "OB-7QK2M9ZD"."""
    return prefix + "".join(secrets.choice(_REFERENCE_ALPHABET) for _ in range(_REFERENCE_LENGTH))


def calendar_month_after(moment: datetime) -> datetime:
    """One calendar month after `moment`, as the law counts it: 31 January gives 28 (or 29) February."""
    later: datetime = moment + relativedelta(months=1)
    return later


def _fingerprint(fields: dict[str, Any]) -> str:
    def normal(value: Any) -> Any:
        if isinstance(value, str):
            return " ".join(value.split()).casefold()
        if isinstance(value, date):
            return value.isoformat()
        if isinstance(value, list | tuple | set | frozenset):
            return sorted(normal(item) for item in value)
        return value

    text = json.dumps({key: normal(value) for key, value in sorted(fields.items())}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


def objection_receive(
    *,
    channel: str,
    given_name: str,
    family_name: str,
    birth_date: date,
    contact_by: str,
    contact_detail: str,
    nhs_number: str = "",
    address: str = "",
    postcode: str = "",
    on_behalf: str = Objection.OnBehalf.SELF,
    requester_name: str = "",
    reason_text: str = "",
    scope_whole_record: bool = False,
    scope_sections: Iterable[str] = (),
    scope_from_partners: Iterable[str] = (),
    scope_to_partners: Iterable[str] = (),
    entered_by_id: int | None = None,
    entered_for_id: int | None = None,
    received_at: datetime | None = None,
) -> tuple[Objection, bool]:
    """Record an objection as received, due one calendar month later; or, for the same submission sent again
    within `RESUBMIT_WINDOW`, the one already stored. Returns the objection and whether it is new.

    Validation of what a person typed is the form's; this stores what it is given.
    """
    received = received_at or timezone.now()
    fields: dict[str, Any] = {
        "channel": channel,
        "given_name": given_name,
        "family_name": family_name,
        "birth_date": birth_date,
        "nhs_number": nhs_number,
        "address": address,
        "postcode": postcode,
        "contact_by": contact_by,
        "contact_detail": contact_detail,
        "on_behalf": on_behalf,
        "requester_name": requester_name,
        "reason_text": reason_text,
        "scope_whole_record": scope_whole_record,
        "scope_sections": sorted(set(scope_sections)),
        "scope_from_partners": sorted(set(scope_from_partners)),
        "scope_to_partners": sorted(set(scope_to_partners)),
    }
    fingerprint = _fingerprint(fields)
    with transaction.atomic():
        # Serialise receipts of one fingerprint, so two copies arriving together still make one case.
        submission_lock(fingerprint)
        earlier = (
            Objection.objects.filter(fingerprint=fingerprint, received_at__gte=received - RESUBMIT_WINDOW)
            .order_by("pk")
            .first()
        )
        if earlier is not None:
            return earlier, False
        objection = Objection.objects.create(
            reference=case_reference_new(OBJECTION_PREFIX),
            received_at=received,
            due_at=calendar_month_after(received),
            fingerprint=fingerprint,
            entered_by_id=entered_by_id,
            entered_for_id=entered_for_id,
            **fields,
        )
        return objection, True


def subject_access_receive(
    *,
    channel: str,
    requester_name: str,
    contact_by: str,
    contact_detail: str,
    nhs_number: str = "",
    birth_date: date | None = None,
    entered_by_id: int | None = None,
    received_at: datetime | None = None,
) -> SubjectAccessRequest:
    """Record a subject access request as received, due one calendar month later."""
    received = received_at or timezone.now()
    return SubjectAccessRequest.objects.create(
        reference=case_reference_new(SUBJECT_ACCESS_PREFIX),
        channel=channel,
        requester_name=requester_name,
        contact_by=contact_by,
        contact_detail=contact_detail,
        nhs_number=nhs_number,
        birth_date=birth_date,
        received_at=received,
        due_at=calendar_month_after(received),
        entered_by_id=entered_by_id,
    )
