"""What the county council's adult social care sends: a long-term support episode, its assessments, its care plan
and the team around the person."""

from __future__ import annotations

from datetime import timedelta

from records.demo import codes
from records.demo.care import care_plan, care_team, episode
from records.demo.people import NURSE_NAMES, SOCIAL_WORKER_NAMES
from records.demo.resources import ResourceBuilder, instant, text_concept
from records.sections import Section

_SOCIAL_HISTORY = [
    {
        "coding": [
            {"system": codes.OBSERVATION_CATEGORY, "code": "social-history", "display": "Social History"}
        ]
    }
]


def social_care_resources(builder: ResourceBuilder) -> None:
    """Adult social care: the open case, the Care Act assessment, the care and support plan, social context."""
    worker = builder.rng.choice(SOCIAL_WORKER_NAMES)
    started = builder.at(builder.rng.randint(40, 900))
    is_open = builder.chance(0.8)
    ended = (
        None if is_open else builder.before_reference(started + timedelta(days=builder.rng.randint(60, 300)))
    )
    episode(builder, "episode", "Adult social care: long-term support", started, ended, worker)
    assessed = started + timedelta(days=builder.rng.randint(3, 20))
    builder.add(
        "QuestionnaireResponse",
        "assessment/care-act",
        {
            # An invented canonical (".example" is reserved for examples); its last segment names the form.
            "questionnaire": "https://forms.cambridgeshire.example/Questionnaire/CareAct2014NeedsAssessment",
            # The form's name for a reader, as FHIR's display extension on the canonical carries it.
            "_questionnaire": {
                "extension": [
                    {
                        "url": "http://hl7.org/fhir/StructureDefinition/display",
                        "valueString": "Care Act 2014 assessment of needs",
                    }
                ]
            },
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
    care_plan(
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
    care_team(
        builder,
        "Adult social care team",
        (("Allocated social worker", worker), ("Occupational therapist", builder.rng.choice(NURSE_NAMES))),
        started,
    )
