"""What a clinician reads in one record entry, taken from the resource the partner sent.

Pure functions of `RecordEntry` rows already read through the door (their `resource` loaded): no queries, no
decisions. The record page, the summary and the timeline render entries through `describe` and, for results,
`group_results`, so every page shows the same words for the same entry.

Always holds: the title is display text, never a bare code or an internal name; the facts are label and value
pairs in the order a clinician reads them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from records.clinical import events, medications, results, safety
from records.clinical.detail import EntryDetail, Fact, ResultGroup
from records.clinical.results import group_results
from records.ingest.fhir import JsonObject, as_object
from records.ingest.mapping import title_of, type_in_words
from records.models import RecordEntry
from records.terminology import capitalised

__all__ = ["EntryDetail", "Fact", "ResultGroup", "describe", "group_results"]

_BY_TYPE: dict[str, Callable[[JsonObject], EntryDetail]] = {
    "MedicationRequest": medications.describe_medication,
    "MedicationStatement": medications.describe_medication,
    "MedicationDispense": medications.describe_medication,
    "MedicationAdministration": medications.describe_medication,
    "Observation": results.describe_observation,
    "DiagnosticReport": results.describe_report,
    "AllergyIntolerance": safety.describe_allergy,
    "Flag": safety.describe_flag,
    "Consent": safety.describe_consent,
    "Condition": events.describe_condition,
    "Encounter": events.describe_encounter,
    "EpisodeOfCare": events.describe_episode,
    "Immunization": events.describe_immunization,
    "Procedure": events.describe_procedure,
    "ServiceRequest": events.describe_request,
    "CarePlan": events.describe_care_plan,
    "CareTeam": events.describe_care_team,
    "QuestionnaireResponse": events.describe_questionnaire_response,
}


# Where `describe` keeps its answer on the entry read: a page shows one entry in its section and on the summary,
# and describes it once. A new read of the entry is a new instance, described anew.
_DESCRIBED = "_clinical_described"


def describe(entry: RecordEntry) -> EntryDetail:
    """The title and facts of one entry."""
    described: EntryDetail | None = entry.__dict__.get(_DESCRIBED)
    if described is None:
        described = entry.__dict__[_DESCRIBED] = _describe(entry)
    return described


def _describe(entry: RecordEntry) -> EntryDetail:
    resource = as_object(entry.resource)
    describer = _BY_TYPE.get(entry.resource_type)
    detail = describer(resource) if describer is not None else EntryDetail(title=title_of(resource))
    title = capitalised(detail.title)
    # A resource naming no concept is titled by its type alone ("Condition"): the partner's summary says more.
    if not title or title.casefold() == type_in_words(entry.resource_type).casefold():
        title = entry.summary or title
    return replace(detail, title=title)
