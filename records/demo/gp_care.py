"""What a GP practice's system sends beyond the clinical record: social history and assessments, alerts, advance
decisions, referrals and the practice's care team."""

from __future__ import annotations

import base64

from records.demo import codes
from records.demo.partners import PARTNER_NAMES, ROYAL_PAPWORTH
from records.demo.people import NURSE_NAMES
from records.demo.resources import ResourceBuilder, instant, organisation_reference

_ALERTS: tuple[tuple[str, str, str], ...] = (
    # (flag category code, display, alert text)
    (
        "clinical",
        "Clinical",
        "Hearing impaired: face the patient and speak clearly; induction loop at reception",
    ),
    ("admin", "Administrative", "Needs a British Sign Language interpreter for appointments"),
    ("behavioral", "Behavioral", "Two staff members for home visits following a previous incident"),
    (
        "clinical",
        "Clinical",
        "Lives with dementia: a family member should be present for consent discussions",
    ),
    ("admin", "Administrative", "Large-print letters please (registered partially sighted)"),
)

# The clinic a GP refers to depends on what the patient has; the text is what the referral letter asks for.
_REFERRAL_REASONS: dict[str, str] = {
    "cardiac": "Referral to cardiology outpatient clinic",
    "respiratory": "Referral to respiratory outpatient clinic",
    "metabolic": "Referral to diabetes and endocrinology clinic",
    "msk": "Referral to orthopaedic outpatient clinic",
    "mental": "Referral to memory clinic",
    "frailty": "Referral to falls clinic",
}


def social_context_and_assessments(builder: ResourceBuilder) -> None:
    problems = set(builder.patient.problems)
    if builder.age >= 16:
        if "copd" in problems:
            status = builder.rng.choice((codes.EX_SMOKER, codes.SMOKER))
        else:
            status = builder.rng.choices((codes.NEVER_SMOKED, codes.EX_SMOKER, codes.SMOKER), (55, 30, 15))[0]
        asked = builder.at(builder.rng.randint(20, 700))
        builder.add(
            "Observation",
            "observation/smoking",
            {
                "status": "final",
                "category": [
                    {
                        "coding": [
                            {
                                "system": codes.OBSERVATION_CATEGORY,
                                "code": "social-history",
                                "display": "Social History",
                            }
                        ]
                    }
                ],
                "code": codes.SMOKING_STATUS.codeable(),
                "subject": builder.subject,
                "effectiveDateTime": instant(asked),
                "valueCodeableConcept": status.codeable(),
            },
            updated=asked,
        )
    if problems & {"depression", "anxiety"} and builder.chance(0.7):
        scored = builder.at(builder.rng.randint(14, 200))
        builder.add(
            "Observation",
            "observation/phq-9",
            {
                "status": "final",
                "category": [
                    {
                        "coding": [
                            {"system": codes.OBSERVATION_CATEGORY, "code": "survey", "display": "Survey"}
                        ]
                    }
                ],
                "code": codes.PHQ9_SCORE.codeable(),
                "subject": builder.subject,
                "effectiveDateTime": instant(scored),
                "valueInteger": builder.rng.randint(5, 19),
            },
            updated=scored,
        )


def alerts_and_legal(builder: ResourceBuilder) -> None:
    if builder.age >= 16 and builder.chance(0.08):
        category, category_display, text = builder.rng.choice(_ALERTS)
        raised = builder.years_ago(0, 6)
        builder.add(
            "Flag",
            "flag/alert",
            {
                "status": "active",
                "category": [
                    {
                        "coding": [
                            {"system": codes.FLAG_CATEGORY, "code": category, "display": category_display}
                        ]
                    }
                ],
                "code": {"text": text},
                "subject": builder.subject,
                "period": {"start": instant(raised)},
                "author": builder.organisation,
            },
            updated=raised,
        )
    if builder.patient.showcase and builder.age >= 65:
        # A clinical alert beside whatever alert chance gave: a showcase patient shows every kind of banner. Drawn
        # from nothing random, so the rest of the demo stays as it was.
        raised = builder.at(240, hour=11, minute=0)
        builder.add(
            "Flag",
            "flag/falls-risk",
            {
                "status": "active",
                "category": [
                    {"coding": [{"system": codes.FLAG_CATEGORY, "code": "clinical", "display": "Clinical"}]}
                ],
                "code": {"text": "Falls risk: two falls in the last year; walks with a frame"},
                "subject": builder.subject,
                "period": {"start": instant(raised)},
                "author": builder.organisation,
            },
            updated=raised,
        )
    if builder.age >= 70 and builder.chance(0.12):
        signed = builder.years_ago(0, 5)
        decision = "Advance decision to refuse treatment: no cardiopulmonary resuscitation, no mechanical ventilation"
        builder.add(
            "Consent",
            "consent/advance-decision",
            {
                "status": "active",
                "scope": {
                    "coding": [
                        {"system": codes.CONSENT_SCOPE, "code": "adr", "display": "Advanced Care Directive"}
                    ],
                    "text": "Advance decision to refuse treatment",
                },
                "category": [
                    {
                        "coding": [
                            {"system": codes.CONSENT_CATEGORY, "code": "acd", "display": "Advance Directive"}
                        ],
                        "text": "Advance decision to refuse treatment",
                    }
                ],
                "patient": builder.subject,
                "dateTime": instant(signed),
                "organization": [builder.organisation],
                "sourceAttachment": {
                    "contentType": "text/plain",
                    "title": "Advance decision to refuse treatment",
                    "data": base64.b64encode(decision.encode()).decode("ascii"),
                },
                "policyRule": {"text": "Mental Capacity Act 2005, sections 24 to 26"},
                "provision": {"type": "deny", "code": [{"text": "Cardiopulmonary resuscitation"}]},
            },
            updated=signed,
        )


def referral(builder: ResourceBuilder, named_gp: str) -> None:
    groups = [codes.PROBLEMS_BY_KEY[key].group for key in builder.patient.problems]
    reasons = [group for group in groups if group in _REFERRAL_REASONS]
    if not reasons or not builder.chance(0.15):
        return
    group = reasons[0]
    destination = ROYAL_PAPWORTH if group == "cardiac" else builder.patient.local_hospital
    sent = builder.at(builder.rng.randint(5, 120))
    builder.add(
        "ServiceRequest",
        "referral/1",
        {
            "status": "active",
            "intent": "order",
            "category": [codes.PATIENT_REFERRAL.codeable()],
            "code": {"coding": [codes.REFERRAL_TO_SERVICE.coding()], "text": _REFERRAL_REASONS[group]},
            "subject": builder.subject,
            "authoredOn": instant(sent),
            "requester": {"display": named_gp},
            "performer": [organisation_reference(destination, PARTNER_NAMES[destination])],
        },
        updated=sent,
    )


def care_team(builder: ResourceBuilder, named_gp: str) -> None:
    registered = builder.years_ago(1, 30)
    participants = [{"role": [{"text": "Named GP"}], "member": {"display": named_gp}}]
    if builder.patient.problems:
        nurse = builder.rng.choice(NURSE_NAMES)
        participants.append(
            {"role": [{"text": "Practice nurse (long-term conditions)"}], "member": {"display": nurse}}
        )
    builder.add(
        "CareTeam",
        "care-team/practice",
        {
            "status": "active",
            "name": "GP practice care team",
            "subject": builder.subject,
            "period": {"start": registered.date().isoformat()},
            "participant": participants,
            "managingOrganization": [builder.organisation],
        },
        updated=registered,
    )
