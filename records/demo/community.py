"""What the community trust sends: contacts with its services (health visiting, school nursing, physiotherapy,
falls prevention) and the care plan they follow."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from records.demo import codes
from records.demo.care import care_plan
from records.demo.resources import ResourceBuilder, instant, text_concept

_HOME_HEALTH = {"system": codes.ACT_CODE, "code": "HH", "display": "home health"}
_AMBULATORY = {"system": codes.ACT_CODE, "code": "AMB", "display": "ambulatory"}


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
    care_plan(
        builder,
        "care-plan",
        title=service.plan_title,
        category=service.category,
        activities=service.activities,
        started=first,
        ended=last if finished else None,
    )
