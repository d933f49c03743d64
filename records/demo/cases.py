"""The information-governance team's demo cases: one objection in each state, and subject access requests.

Made through the same services the IG team's pages call, acted by privacy.fay, so each case has its change history.
They are about ordinary demo patients, practice A's first (never the fixed or showcase patients the README names),
so the upheld objection shows on gp.ada's records, and the rules the README walks through stay as they
are. A second load finds the cases and adds none.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

from django.contrib.auth import get_user_model
from django.db import transaction
from django.utils import timezone

from consent.models import Objection
from consent.objections import (
    objection_clinical_input_record,
    objection_decide,
    objection_identity_not_found,
    objection_identity_verify,
    objection_inform,
    objection_receive,
    objection_withdraw,
)
from consent.subject_access import subject_access_enter, subject_access_identity_verify
from records.demo.generator import demo_nhs_numbers
from records.demo.partners import CPFT, CUH, PRACTICE_A
from records.models import Patient
from records.sections import Section

Status = Objection.Status
# Demo cases reply to addresses of this domain (reserved for examples), which is how a second load knows them.
DEMO_DOMAIN = "example.org"
# The fixed and showcase patients the README and the demo's own tests name: no case is about them.
NAMED_PATIENTS = tuple(demo_nhs_numbers(10))


@dataclass(frozen=True)
class CaseSpec:
    """One demo objection: the state it is left in and what it asks."""

    state: str
    days_ago: int
    whole_record: bool = False
    sections: tuple[str, ...] = ()
    from_partners: tuple[str, ...] = ()
    to_partners: tuple[str, ...] = ()
    reason: str = ""


CASES: tuple[CaseSpec, ...] = (
    # Received long enough ago to be overdue: on the overdue list and, once beat runs, an alert.
    CaseSpec(Status.RECEIVED, 40, whole_record=True, reason="I do not want my record shared at all."),
    CaseSpec(Status.IDENTITY_VERIFIED, 6, to_partners=(CPFT,)),
    CaseSpec(Status.NOT_FOUND, 12, whole_record=True),
    CaseSpec(Status.UNDER_REVIEW, 9, sections=(Section.ASSESSMENTS.value,)),
    CaseSpec(Status.UPHELD, 25, from_partners=(CUH,), reason="My hospital treatment is private."),
    CaseSpec(Status.PARTLY_UPHELD, 27, sections=(Section.SOCIAL_CONTEXT.value, Section.ALERTS.value)),
    CaseSpec(Status.NOT_UPHELD, 29, whole_record=True, reason="Please stop all sharing."),
    CaseSpec(Status.WITHDRAWN, 20, from_partners=(CPFT,)),
)


def demo_cases_upsert() -> list[Objection]:
    """Make the demo's objection in each state and two subject access requests (one received and overdue, one
    identity verified), unless a load made them already."""
    if Objection.objects.filter(contact_detail__endswith=f"@{DEMO_DOMAIN}").exists():
        return list(Objection.objects.filter(contact_detail__endswith=f"@{DEMO_DOMAIN}"))
    fay = get_user_model().objects.get(username="privacy.fay")
    # Practice A's patients first (gp.ada sees what the decided objections withhold), then anyone's.
    wanted = len(CASES) + 2
    candidates = Patient.objects.filter(merged_into__isnull=True).exclude(nhs_number__in=NAMED_PATIENTS)
    patients = list(
        candidates.filter(registered_practice__ods_code=PRACTICE_A).order_by("nhs_number")[:wanted]
    )
    patients += list(
        candidates.exclude(pk__in=[patient.pk for patient in patients]).order_by("nhs_number")[
            : wanted - len(patients)
        ]
    )
    now = timezone.now()
    with transaction.atomic():
        cases = [_case(spec, patient, fay, now) for spec, patient in zip(CASES, patients, strict=False)]
        _access_requests(patients[len(CASES) :], fay, now)
    return cases


def _case(spec: CaseSpec, patient: Patient, fay, now) -> Objection:  # type: ignore[no-untyped-def]
    found = spec.state != Status.NOT_FOUND
    born = patient.birth_date
    child = born is not None and (now.date() - born).days < 16 * 365
    objection, _ = objection_receive(
        channel=Objection.Channel.WEB_FORM if spec.days_ago % 2 else Objection.Channel.LETTER,
        given_name=patient.given_name,
        family_name=patient.family_name,
        birth_date=patient.birth_date or date(1970, 1, 1),
        # The case whose patient is not found gave a number no one holds.
        nhs_number=patient.nhs_number if found else "",
        address="" if found else "12 Unknown Lane, Cambridge",
        postcode="" if found else "CB9 9ZZ",
        contact_by=Objection.ContactBy.EMAIL,
        contact_detail=f"{spec.state}.{patient.family_name.lower()}@{DEMO_DOMAIN}",
        # A child's objection is made by a parent.
        on_behalf=Objection.OnBehalf.PARENT if child else Objection.OnBehalf.SELF,
        requester_name=f"Sam {patient.family_name}" if child else "",
        reason_text=spec.reason,
        scope_whole_record=spec.whole_record,
        scope_sections=spec.sections,
        scope_from_partners=spec.from_partners,
        scope_to_partners=spec.to_partners,
        received_at=now - timedelta(days=spec.days_ago),
    )
    step = {"objection_id": objection.pk, "by": fay}
    if spec.state == Status.RECEIVED:
        return objection
    if spec.state == Status.NOT_FOUND:
        return objection_identity_not_found(
            **step, note="No patient held with this name, date of birth and postcode."
        )
    objection_identity_verify(**step, patient_id=patient.pk, note="Matched by NHS number and date of birth.")
    if spec.state == Status.IDENTITY_VERIFIED:
        return objection
    objection_clinical_input_record(
        **step,
        clinician="Dr Ada Whitfield, GP",
        text="No safeguarding concerns known; the patient understands.",
    )
    if spec.state == Status.UNDER_REVIEW:
        return objection
    if spec.state == Status.WITHDRAWN:
        return objection_withdraw(
            **step, note="The patient phoned to say they are happy for sharing to go on."
        )
    if spec.state == Status.UPHELD:
        objection_decide(**step, outcome=Status.UPHELD, note="Upheld in full.")
    elif spec.state == Status.PARTLY_UPHELD:
        objection_decide(
            **step,
            outcome=Status.PARTLY_UPHELD,
            sections=[Section.SOCIAL_CONTEXT.value],
            refusal_reason=Objection.RefusalReason.SAFEGUARDING,
            note="Alerts stay shared: they carry safety information for whoever treats the patient.",
        )
    else:
        objection_decide(
            **step,
            outcome=Status.NOT_UPHELD,
            refusal_reason=Objection.RefusalReason.CARE_NOT_OTHERWISE,
            note="The patient's care is shared between four partners and cannot safely be given without it.",
        )
    return objection_inform(**step)


def _access_requests(patients: list[Patient], fay, now) -> None:  # type: ignore[no-untyped-def]
    for number, patient in enumerate(patients):
        request = subject_access_enter(
            channel=Objection.Channel.LETTER,
            requester_name=patient.full_name,
            contact_by=Objection.ContactBy.EMAIL,
            contact_detail=f"access.{patient.family_name.lower()}@{DEMO_DOMAIN}",
            nhs_number_text=patient.nhs_number,
            birth_date=patient.birth_date,
            entered_by_id=fay.pk,
            received_at=now - timedelta(days=10 + 25 * number),
        )
        if number == 0 and patient.birth_date is not None:
            subject_access_identity_verify(
                reference=request.reference,
                patient=patient,
                nhs_number_text=patient.nhs_number,
                birth_date=patient.birth_date,
                by_user_id=fay.pk,
            )
