"""What the mental-health trust sends: an episode with its care plan, risk assessment, care team and any Mental
Health Act status."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from records.demo import codes
from records.demo.care import care_plan, care_team, episode
from records.demo.people import CARE_COORDINATOR_NAMES, CLINICIAN_NAMES
from records.demo.resources import ResourceBuilder, instant, text_concept
from records.sections import Section

_SURVEY = [{"coding": [{"system": codes.OBSERVATION_CATEGORY, "code": "survey", "display": "Survey"}]}]
_SERIOUS_MENTAL_ILLNESS = frozenset({"schizophrenia", "bipolar"})


@dataclass(frozen=True)
class _MentalHealthService:
    name: str
    # Job title of the person who holds the case, and of the senior clinician behind them.
    lead_role: str
    senior_role: str
    activities: tuple[str, ...]


_COMMUNITY_TEAM = _MentalHealthService(
    "Adult community mental health team",
    "Care coordinator",
    "Consultant psychiatrist",
    (
        "Care coordinator contact every two weeks",
        "Medication review with the team psychiatrist every three months",
        "Crisis plan shared with the patient and their GP",
    ),
)
_MEMORY_SERVICE = _MentalHealthService(
    "Memory assessment service",
    "Memory nurse",
    "Consultant in old age psychiatry",
    (
        "Memory assessment and diagnosis appointment",
        "Carer support group details given",
        "Review of cognitive-enhancing medicine after twelve weeks",
    ),
)
_TALKING_THERAPIES = _MentalHealthService(
    "Psychological wellbeing service",
    "Psychological wellbeing practitioner",
    "Clinical lead psychologist",
    (
        "Course of cognitive behavioural therapy: twelve weekly sessions",
        "Relapse prevention plan at discharge",
    ),
)


def mental_health_resources(builder: ResourceBuilder) -> None:
    """A mental-health episode with its care plan, risk assessment, care team and any Mental Health Act status."""
    problems = set(builder.patient.problems)
    serious = bool(problems & _SERIOUS_MENTAL_ILLNESS)
    if serious:
        service = _COMMUNITY_TEAM
    elif "dementia" in problems:
        service = _MEMORY_SERVICE
    else:
        service = _TALKING_THERAPIES
    is_open = builder.chance(0.6)
    started = builder.at(builder.rng.randint(30, 700))
    ended = (
        None if is_open else builder.before_reference(started + timedelta(days=builder.rng.randint(40, 200)))
    )
    lead = builder.rng.choice(CARE_COORDINATOR_NAMES)
    episode(builder, "episode", service.name, started, ended, lead)
    care_plan(
        builder,
        "care-plan",
        title=f"{service.name}: care plan",
        category="Mental health care plan",
        activities=service.activities,
        started=started + timedelta(days=7),
        ended=ended,
    )
    assessed = started + timedelta(days=1)
    risk = builder.rng.choices(("Low", "Moderate", "High"), (70, 25, 5))[0]
    builder.add(
        "Observation",
        "observation/risk-assessment",
        {
            "status": "final",
            "category": _SURVEY,
            "code": text_concept("Clinical risk assessment"),
            "subject": builder.subject,
            "effectiveDateTime": instant(assessed),
            "valueString": f"{risk} risk to self; low risk to others",
            "component": [
                {"code": text_concept("Risk to self"), "valueString": risk},
                {"code": text_concept("Risk to others"), "valueString": "Low"},
                {"code": text_concept("Risk from others"), "valueString": "Low"},
            ],
        },
        updated=assessed,
    )
    care_team(
        builder,
        "Mental health care team",
        ((service.lead_role, lead), (service.senior_role, builder.rng.choice(CLINICIAN_NAMES))),
        started,
    )
    if serious and builder.chance(0.35):
        since = started + timedelta(days=builder.rng.randint(1, 25))
        builder.add(
            "Flag",
            "flag/mental-health-act",
            {
                "status": "active",
                "category": [text_concept("Mental Health Act status")],
                "code": text_concept("Community treatment order (Mental Health Act 1983, section 17A)"),
                "subject": builder.subject,
                "period": {"start": instant(since)},
                "author": builder.organisation,
            },
            updated=since,
            heading=Section.LEGAL,
        )
