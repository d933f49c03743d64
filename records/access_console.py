"""The door for the privacy officer's audit console: searching the access trail, one user's activity timeline, the
search downloaded as CSV, and the console's home with its charts. Every read of the trail here is decided and
audited.

Who may: privacy officers, as `consent.policy.may_read_audit` says; nobody else, and a superuser only if acting
under such a role. To everyone else every function here commits a denied `read-audit` (or `export`) event with
purpose audit and answers `PatientNotFound`, as for a patient not held.

What always holds:
- every search (each page of its results), timeline read and console home read is one `read-audit` event, and
  every download one `export` event, each with purpose audit, written in the same transaction and before the trail
  is read, so what is read includes its own reading;
- a search naming a patient sets the event's patient id to the patient's record (the one others were merged into),
  so the patient's own access report shows it; the event's query describes the criteria and never holds the NHS
  number; a number held by nobody is a `not-found` event, then `PatientNotFound`;
- a patient search finds the events about the patient's record and every record merged into it;
- the NHS number reaches these functions only from a POST body kept in the session, never from a URL.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from django.contrib.auth import get_user_model
from django.core.paginator import Page, Paginator
from django.db import transaction
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils import timezone
from django.utils.functional import cached_property

from audit.console import (
    AccessesOnDay,
    AlertsInWeek,
    EventFilter,
    access_events_filter,
    alert_counts_per_week,
)
from audit.day_counts import access_counts_per_day_kept
from audit.models import AccessEvent
from audit.services import AccessFacts, access_event_record
from consent.access_report import basis_in_words, basis_sources_for, patient_record_ids, role_in_words
from consent.policy import may_read_audit
from records import nhs_number
from records.access import PatientNotFound, User, actor_of, context_of
from records.models import Patient, patient_survivor

Action = AccessEvent.Action
Outcome = AccessEvent.Outcome
NOT_A_PRIVACY_OFFICER = "user may not read the audit trail"
CONSOLE_BASIS = "audit console"
EVENTS_PER_PAGE = 50
# How many of a search's events are counted and can be paged to, newest first. Counting or paging further would read
# every event the search names, which grows with the trail; a narrower search (fewer days) reaches older events.
EVENTS_COUNTED = 10_000
ACCESS_CHART_DAYS = 30
ALERT_CHART_WEEKS = 12


class CappedPaginator(Paginator):  # type: ignore[type-arg]
    """Pages of at most the first `EVENTS_COUNTED` objects: its count reads no more than one object past them
    (`is_capped` when there were more), so neither counting nor the deepest page reads further."""

    def __init__(self, events: QuerySet[AccessEvent], per_page: int) -> None:
        super().__init__(events, per_page)
        self.events = events

    @cached_property
    def _counted(self) -> int:
        return self.events[: EVENTS_COUNTED + 1].count()

    @cached_property
    def count(self) -> int:
        return min(self._counted, EVENTS_COUNTED)

    @property
    def is_capped(self) -> bool:
        return self._counted > EVENTS_COUNTED


@dataclass(frozen=True)
class EventSearch:
    """A privacy officer's search of the trail, as the form took it: empty fields narrow nothing. `nhs_number` is
    bare digits, valid, or empty."""

    nhs_number: str = ""
    username: str = ""
    organisation_ods: str = ""
    date_from: date | None = None
    date_to: date | None = None
    action: str = ""
    outcome: str = ""

    def described(self) -> str:
        """The criteria in words for the event's query: the patient only as named by the event's patient id."""
        parts = ["event search"]
        if self.nhs_number:
            parts.append("of the event's patient")
        if self.username:
            parts.append(f"by user {self.username}")
        if self.organisation_ods:
            parts.append(f"at {self.organisation_ods}")
        if self.action:
            parts.append(f"action {self.action}")
        if self.outcome:
            parts.append(f"outcome {self.outcome}")
        return " ".join(parts) + _range_words(self.date_from, self.date_to)


def _range_words(date_from: date | None, date_to: date | None) -> str:
    return (f" from {date_from.isoformat()}" if date_from else "") + (
        f" to {date_to.isoformat()}" if date_to else ""
    )


@dataclass(frozen=True)
class EventRow:
    """One access event in words: who (role and organisation named), what, about whom, and on what basis."""

    event: AccessEvent
    role: str
    organisation: str
    action: str
    purpose: str
    outcome: str
    basis: str
    patient: Patient | None


@dataclass(frozen=True)
class EventSearchResults:
    """One page of a search's events, newest first, and the patient it named (their surviving record), if any."""

    search: EventSearch
    patient: Patient | None
    rows: list[EventRow]
    page: Page[Any]


@dataclass(frozen=True)
class DayOfRows:
    day: date
    rows: list[EventRow]


@dataclass(frozen=True)
class UserTimeline:
    """One page of a user's events between two days, grouped by day, newest first. `username` is the user's
    name now, or as the newest event on the page recorded it when the user is no longer held."""

    user_id: int
    username: str
    date_from: date
    date_to: date
    days: list[DayOfRows]
    page: Page[Any]


@dataclass(frozen=True)
class ConsoleSummary:
    accesses_per_day: list[AccessesOnDay]
    alerts_per_week: list[AlertsInWeek]


def _record(user: User, request: HttpRequest | None, facts: AccessFacts) -> None:
    access_event_record(actor_of(user), facts, context_of(request))


def _facts(allowed: bool, *, action: str = Action.READ_AUDIT, **given: Any) -> AccessFacts:
    return AccessFacts(
        action=action,
        purpose=AccessEvent.Purpose.AUDIT,
        outcome=given.pop("outcome", Outcome.ALLOWED if allowed else Outcome.DENIED),
        basis=CONSOLE_BASIS if allowed else "",
        reason=given.pop("reason", "") if allowed else NOT_A_PRIVACY_OFFICER,
        **given,
    )


def _patient_named(search: EventSearch | None) -> Patient | None:
    if search is None or not search.nhs_number:
        return None
    return patient_survivor(
        Patient.objects.filter(nhs_number=nhs_number.normalise(search.nhs_number)).first()
    )


def _filter(search: EventSearch, patient: Patient | None) -> EventFilter:
    return EventFilter(
        patient_ids=tuple(patient_record_ids(patient)) if patient is not None else (),
        username=search.username,
        organisation_ods=search.organisation_ods,
        date_from=search.date_from,
        date_to=search.date_to,
        action=search.action,
        outcome=search.outcome,
    )


def event_rows(events: Iterable[AccessEvent]) -> list[EventRow]:
    """The events in words: each kind of thing they name (organisations, relationships, grants, patients) is read
    in one query, whatever the number of events."""
    listed = list(events)
    sources = basis_sources_for(listed)
    patients = Patient.objects.in_bulk({event.patient_id for event in listed if event.patient_id is not None})
    actions, purposes = dict(Action.choices), dict(AccessEvent.Purpose.choices)
    outcomes = dict(Outcome.choices)
    rows = []
    for event in listed:
        name = sources.organisations.get(event.organisation_ods, ("", ""))[0]
        rows.append(
            EventRow(
                event=event,
                role=role_in_words(event.job_role),
                organisation=f"{name} ({event.organisation_ods})" if name else event.organisation_ods,
                action=actions.get(event.action, event.action),
                purpose=purposes.get(event.purpose, event.purpose),
                outcome=outcomes.get(event.outcome, event.outcome),
                basis=basis_in_words(event, sources)[0],
                patient=patients.get(event.patient_id) if event.patient_id is not None else None,
            )
        )
    return rows


def console_open_for_user(*, user: User, request: HttpRequest | None, page: str) -> None:
    """Nothing, for a privacy officer on a console page that reads nothing of the trail (the empty search form);
    for anyone else a denied `read-audit` event naming `page` is committed, then `PatientNotFound`."""
    if may_read_audit(user):
        return
    _record(user, request, _facts(False, query=page[:200]))
    raise PatientNotFound


def event_search_begin_for_user(
    *, user: User, request: HttpRequest | None, search: EventSearch | None
) -> None:
    """Nothing, for a privacy officer sending a search (running it is its event); for anyone else, whatever they
    sent (`None` for a form that did not validate), a denied `read-audit` event is committed, naming the patient
    when the number is held so they learn someone tried, then `PatientNotFound`."""
    if may_read_audit(user):
        return
    with transaction.atomic():
        patient = _patient_named(search)
        _record(
            user,
            request,
            _facts(
                False,
                patient_id=patient.pk if patient is not None else None,
                query=(search.described() if search is not None else "event search")[:200],
            ),
        )
    raise PatientNotFound


def _outcome(allowed: bool, search: EventSearch, patient: Patient | None) -> str:
    if not allowed:
        return Outcome.DENIED
    return Outcome.NOT_FOUND if search.nhs_number and patient is None else Outcome.ALLOWED


def event_search_for_user(
    *, user: User, request: HttpRequest | None, search: EventSearch, page_number: int = 1
) -> EventSearchResults:
    """One page of the events the search names, newest first, in words.

    Always holds: a `read-audit` event (purpose audit; the patient's id when the search names one held here) is
    written before the trail is read, in the same transaction; a refusal, or an NHS number held by nobody, is
    committed, then `PatientNotFound`.
    """
    allowed = may_read_audit(user)
    results: EventSearchResults | None = None
    with transaction.atomic():
        patient = _patient_named(search)
        outcome = _outcome(allowed, search, patient)
        _record(
            user,
            request,
            _facts(
                allowed,
                outcome=outcome,
                patient_id=patient.pk if patient is not None else None,
                query=f"{search.described()}, page {page_number}"[:200],
            ),
        )
        if outcome == Outcome.ALLOWED:
            events = access_events_filter(_filter(search, patient))
            page = CappedPaginator(events, EVENTS_PER_PAGE).get_page(page_number)
            rows = event_rows(page.object_list)
            results = EventSearchResults(search=search, patient=patient, rows=rows, page=page)
    # Raised outside the atomic block, so the refusal's audit row is committed, not rolled back with it.
    if results is None:
        raise PatientNotFound
    return results


def event_search_export_for_user(
    *, user: User, request: HttpRequest | None, search: EventSearch
) -> list[EventRow]:
    """Every event the search names, newest first, in words, for a download.

    Always holds: an `export` event (purpose audit; the patient's id when the search names one held here) is
    written before the trail is read, in the same transaction, so the download includes it; a refusal, or an NHS
    number held by nobody, is committed, then `PatientNotFound`.
    """
    allowed = may_read_audit(user)
    rows: list[EventRow] | None = None
    with transaction.atomic():
        patient = _patient_named(search)
        outcome = _outcome(allowed, search, patient)
        _record(
            user,
            request,
            _facts(
                allowed,
                action=Action.EXPORT,
                outcome=outcome,
                patient_id=patient.pk if patient is not None else None,
                query=search.described()[:200],
                reason="audit search downloaded as CSV",
            ),
        )
        if outcome == Outcome.ALLOWED:
            rows = event_rows(access_events_filter(_filter(search, patient)))
    if rows is None:
        raise PatientNotFound
    return rows


def user_timeline_for_user(
    *,
    user: User,
    request: HttpRequest | None,
    subject_user_id: int,
    date_from: date,
    date_to: date,
    page_number: int = 1,
) -> UserTimeline:
    """One page of what the user `subject_user_id` did between two days (both included), newest first, grouped by
    day, in words. A user id is not patient data; a user not held has an empty timeline, not a refusal.

    Always holds: a `read-audit` event (purpose audit, no patient) is written before the trail is read, in the same
    transaction; a refusal is committed, then `PatientNotFound`.
    """
    allowed = may_read_audit(user)
    timeline: UserTimeline | None = None
    with transaction.atomic():
        _record(
            user,
            request,
            _facts(
                allowed,
                query=(
                    f"timeline of user {subject_user_id}{_range_words(date_from, date_to)}, page {page_number}"
                )[:200],
            ),
        )
        if allowed:
            events = access_events_filter(
                EventFilter(user_id=subject_user_id, date_from=date_from, date_to=date_to)
            )
            page = CappedPaginator(events, EVENTS_PER_PAGE).get_page(page_number)
            rows = event_rows(page.object_list)
            held = get_user_model().objects.filter(pk=subject_user_id).first()
            timeline = UserTimeline(
                user_id=subject_user_id,
                username=held.get_username() if held else next((row.event.username for row in rows), ""),
                date_from=date_from,
                date_to=date_to,
                days=_by_day(rows),
                page=page,
            )
    if timeline is None:
        raise PatientNotFound
    return timeline


def _by_day(rows: list[EventRow]) -> list[DayOfRows]:
    days: list[DayOfRows] = []
    for row in rows:
        day = timezone.localdate(row.event.occurred_at)
        if not days or days[-1].day != day:
            days.append(DayOfRows(day=day, rows=[]))
        days[-1].rows.append(row)
    return days


def audit_console_for_user(
    *, user: User, request: HttpRequest | None, now: datetime | None = None
) -> ConsoleSummary:
    """The console's home: accesses per day over the last 30 days (allowed and denied) and alerts raised per week
    over the last 12 (open and reviewed), up to `now`.

    Always holds: a `read-audit` event (purpose audit, no patient) is written before anything is counted, in the
    same transaction, so today's count includes it; a refusal is committed, then `PatientNotFound`. The days that
    are over are read from their kept counts (`audit.day_counts`), so the page reads at most 30 of those and today's
    events, however long the trail.
    """
    allowed = may_read_audit(user)
    summary: ConsoleSummary | None = None
    with transaction.atomic():
        _record(user, request, _facts(allowed, query="audit console"))
        if allowed:
            moment = now or timezone.now()
            summary = ConsoleSummary(
                accesses_per_day=access_counts_per_day_kept(now=moment, days=ACCESS_CHART_DAYS),
                alerts_per_week=alert_counts_per_week(now=moment, weeks=ALERT_CHART_WEEKS),
            )
    if summary is None:
        raise PatientNotFound
    return summary
