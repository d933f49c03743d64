"""What the mental-health trust, the community trust and the county council send: episodes, plans, assessments."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from records.demo import codes
from records.demo.people import CARE_COORDINATOR_NAMES, CLINICIAN_NAMES, NURSE_NAMES, SOCIAL_WORKER_NAMES
from records.demo.resources import ResourceBuilder, instant, text_concept
from records.sections import Section

_HOME_HEALTH = {"system": codes.ACT_CODE, "code": "HH", "display": "home health"}
_AMBULATORY = {"system": codes.ACT_CODE, "code": "AMB", "display": "ambulatory"}
_SURVEY = [{"coding": [{"system": codes.OBSERVATION_CATEGORY, "code": "survey", "display": "Survey"}]}]
_SOCIAL_HISTORY = [
    {
        "coding": [
            {"system": codes.OBSERVATION_CATEGORY, "code": "social-history", "display": "Social History"}
        ]
    }
]
_SERIOUS_MENTAL_ILLNESS = frozenset({"schizophrenia", "bipolar"})


def _episode(
    builder: ResourceBuilder, key: str, service: str, started: datetime, ended: datetime | None, manager: str
) -> None:
    period = {"start": instant(started)}
    if ended is not None:
        period["end"] = instant(ended)
    builder.add(
        "EpisodeOfCare",
        key,
        {
            "status": "active" if ended is None else "finished",
            "type": [text_concept(service)],
            "patient": builder.subject,
            "managingOrganization": builder.organisation,
            "period": period,
            "careManager": {"display": manager},
        },
        updated=ended or started,
    )


def _care_plan(
    builder: ResourceBuilder,
    key: str,
    *,
    title: str,
    category: str,
    activities: tuple[str, ...],
    started: datetime,
    ended: datetime | None,
) -> None:
    period = {"start": instant(started)}
    if ended is not None:
        period["end"] = instant(ended)
    activity_status = "in-progress" if ended is None else "completed"
    builder.add(
        "CarePlan",
        key,
        {
            "status": "active" if ended is None else "completed",
            "intent": "plan",
            "category": [text_concept(category)],
            "title": title,
            "subject": builder.subject,
            "period": period,
            "author": builder.organisation,
            "activity": [{"detail": {"status": activity_status, "description": text}} for text in activities],
        },
        updated=ended or started,
    )


def _care_team(
    builder: ResourceBuilder, name: str, members: tuple[tuple[str, str], ...], started: datetime
) -> None:
    builder.add(
        "CareTeam",
        "care-team",
        {
            "status": "active",
            "name": name,
            "subject": builder.subject,
            "period": {"start": instant(started)},
            "participant": [
                {"role": [{"text": role}], "member": {"display": person}} for role, person in members
            ],
            "managingOrganization": [builder.organisation],
        },
        updated=started,
    )


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
    _episode(builder, "episode", service.name, started, ended, lead)
    _care_plan(
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
    _care_team(
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


def _community_contacts(
    builder: ResourceBuilder,
    *,
    visit_class: dict[str, str],
    visit_type: dict[str, Any],
    count: int,
    first: datetime,
) -> datetime:
    last = first
    for number in range(count):
        seen = builder.before_reference(first + timedelta(days=14 * number))
        left = builder.before_reference(seen + timedelta(minutes=45))
        last = left
        builder.add(
            "Encounter",
            f"encounter/contact/{number}",
            {
                "status": "finished",
                "class": visit_class,
                "type": [visit_type],
                "subject": builder.subject,
                "period": {"start": instant(seen), "end": instant(left)},
                "serviceProvider": builder.organisation,
            },
            updated=left,
        )
    return last


@dataclass(frozen=True)
class _CommunityService:
    visit_class: dict[str, str]
    visit_type: dict[str, Any]
    plan_title: str
    category: str
    activities: tuple[str, ...]


_HEALTH_VISITING = _CommunityService(
    _HOME_HEALTH,
    {**codes.HOME_VISIT.codeable(), "text": "Health visitor review"},
    "Family health needs plan",
    "Health visiting",
    ("Developmental review at two to two and a half years", "Support with sleep and feeding"),
)
_SCHOOL_NURSING = _CommunityService(
    _AMBULATORY,
    text_concept("School nursing appointment"),
    "School health plan",
    "School nursing",
    ("Care plan shared with the school with parental consent", "Review at the start of each term"),
)
_PHYSIOTHERAPY = _CommunityService(
    _AMBULATORY,
    text_concept("Musculoskeletal physiotherapy appointment"),
    "Physiotherapy exercise programme",
    "Musculoskeletal physiotherapy",
    ("Daily strengthening exercises for hip and knee", "Walking programme, building to 30 minutes"),
)
_FALLS_PREVENTION = _CommunityService(
    _HOME_HEALTH,
    {**codes.HOME_VISIT.codeable(), "text": "Falls prevention home visit"},
    "Falls prevention plan",
    "Falls prevention",
    ("Strength and balance exercises three times a week", "Grab rails fitted in the bathroom"),
)


def community_resources(builder: ResourceBuilder) -> None:
    """Community services: health visiting for small children, physiotherapy, or falls prevention at home."""
    first = builder.at(builder.rng.randint(30, 500))
    count = builder.rng.randint(1, 4)
    if builder.age < 5:
        service = _HEALTH_VISITING
    elif builder.age < 18:
        service = _SCHOOL_NURSING
    elif "osteoarthritis" in builder.patient.problems:
        service = _PHYSIOTHERAPY
    else:
        service = _FALLS_PREVENTION
    last = _community_contacts(
        builder, visit_class=service.visit_class, visit_type=service.visit_type, count=count, first=first
    )
    finished = builder.rng.random() < 0.4 and not builder.patient.showcase
    _care_plan(
        builder,
        "care-plan",
        title=service.plan_title,
        category=service.category,
        activities=service.activities,
        started=first,
        ended=last if finished else None,
    )


def social_care_resources(builder: ResourceBuilder) -> None:
    """Adult social care: the open case, the Care Act assessment, the care and support plan, social context."""
    worker = builder.rng.choice(SOCIAL_WORKER_NAMES)
    started = builder.at(builder.rng.randint(40, 900))
    is_open = builder.chance(0.8)
    ended = (
        None if is_open else builder.before_reference(started + timedelta(days=builder.rng.randint(60, 300)))
    )
    _episode(builder, "episode", "Adult social care: long-term support", started, ended, worker)
    assessed = started + timedelta(days=builder.rng.randint(3, 20))
    builder.add(
        "QuestionnaireResponse",
        "assessment/care-act",
        {
            # An invented canonical (".example" is reserved for examples); its last segment names the form.
            "questionnaire": "https://forms.cambridgeshire.example/Questionnaire/CareAct2014NeedsAssessment",
            "status": "completed",
            "subject": builder.subject,
            "authored": instant(assessed),
            "author": builder.organisation,
            "item": [
                {
                    "linkId": "title",
                    "text": "Care Act 2014 assessment of needs",
                    "answer": [{"valueString": "Completed with the person and their family"}],
                },
                {
                    "linkId": "nutrition",
                    "text": "Managing and maintaining nutrition",
                    "answer": [{"valueString": "Needs help preparing meals"}],
                },
                {
                    "linkId": "personal-care",
                    "text": "Maintaining personal hygiene",
                    "answer": [{"valueString": builder.rng.choice(("Independent", "Needs help washing"))}],
                },
                {
                    "linkId": "home-safety",
                    "text": "Being able to make use of the home safely",
                    "answer": [
                        {"valueString": builder.rng.choice(("At risk of falls on the stairs", "Safe"))}
                    ],
                },
                {
                    "linkId": "eligible",
                    "text": "Eligible needs under the Care Act 2014",
                    "answer": [{"valueBoolean": True}],
                },
            ],
        },
        updated=assessed,
    )
    calls = builder.rng.choice(("one", "two", "three"))
    _care_plan(
        builder,
        "care-plan",
        title="Care and support plan",
        category="Adult social care: care and support plan",
        activities=(
            f"Home care: {calls} visits a day for personal care and meals",
            "Telecare pendant alarm",
            "Day centre on Tuesdays and Thursdays",
        ),
        started=assessed + timedelta(days=7),
        ended=ended,
    )
    noted = assessed + timedelta(hours=2)
    if builder.chance(0.5):
        builder.add(
            "Observation",
            "observation/lives-alone",
            {
                "status": "final",
                "category": _SOCIAL_HISTORY,
                "code": codes.LIVES_ALONE.codeable(),
                "subject": builder.subject,
                "effectiveDateTime": instant(noted),
            },
            updated=noted,
        )
    if builder.chance(0.4):
        carer = builder.rng.choice(("daughter", "son", "husband", "wife", "neighbour"))
        builder.add(
            "Observation",
            "observation/carer",
            {
                "status": "final",
                "category": _SOCIAL_HISTORY,
                "code": text_concept("Has an unpaid carer"),
                "subject": builder.subject,
                "effectiveDateTime": instant(noted),
                "valueString": f"{carer}; carer's assessment offered",
            },
            updated=noted,
        )
    if builder.chance(0.15):
        raised = builder.before_reference(assessed + timedelta(days=builder.rng.randint(5, 60)))
        builder.add(
            "Flag",
            "flag/safeguarding",
            {
                "status": "active",
                "category": [
                    {"coding": [{"system": codes.FLAG_CATEGORY, "code": "safety", "display": "Safety"}]}
                ],
                "code": text_concept("Adult safeguarding enquiry in progress (Care Act 2014, section 42)"),
                "subject": builder.subject,
                "period": {"start": instant(raised)},
                "author": builder.organisation,
            },
            updated=raised,
            heading=Section.SAFEGUARDING,
        )
    _care_team(
        builder,
        "Adult social care team",
        (("Allocated social worker", worker), ("Occupational therapist", builder.rng.choice(NURSE_NAMES))),
        started,
    )
