"""The episode of care, care plan and care team that the mental-health trust, the community trust and the county
council send, written alike by each."""

from __future__ import annotations

from datetime import datetime

from records.demo.resources import ResourceBuilder, instant, text_concept


def episode(
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


def care_plan(
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


def care_team(
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
