"""One row of a council's CSV extract as a FHIR R4 resource, through the feed's declared mapping.

What always holds: a row becomes exactly one resource of the type its record type maps to (the first of the
mapping's targets whose needed columns have values), or a `RowProblem` saying why not, with its line number; the
resource's id is the row's record id (made FHIR-valid by `fhir.fhir_id`), its patient is named only by the NHS
number identifier, and empty values are left out (FHIR forbids them). Extract times without an offset are the
council's local time.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime
from zoneinfo import ZoneInfo

from records.ingest.fhir import JsonObject, fhir_id
from records.ingest.formats.csv_mapping import STATUS_WORDS, STATUSES, TARGETS, CsvMapping, Target, fold
from records.ingest.items import ExpectedPatient, Reason
from records.ingest.matching import NHS_NUMBER_SYSTEM
from records.models import Feed
from records.nhs_number import is_valid, normalise
from records.sections import HEADINGS_SYSTEM

ODS_SYSTEM = "https://fhir.nhs.uk/Id/ods-organization-code"
OBSERVATION_CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"
FLAG_CATEGORY = "http://terminology.hl7.org/CodeSystem/flag-category"
# Extract times without an offset are the council's local time.
LOCAL_TIME = ZoneInfo("Europe/London")


class RowProblem(Exception):
    """A row that cannot become a resource: the quarantine reason, and a detail naming its line."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


class RowBuilder:
    """Builds the resources of one feed's rows."""

    def __init__(self, feed: Feed, mapping: CsvMapping) -> None:
        self.feed = feed
        self.mapping = mapping
        self.identifier_system = f"urn:sharedcare:feed:{feed.code}"

    def column(self, name: str) -> str:
        return self.mapping.columns.get(name, name)

    def resource(self, line: int, values: dict[str, str]) -> tuple[JsonObject, ExpectedPatient, bool]:
        """The row as a FHIR resource, the patient it expects, and whether the row deletes that resource.

        A deleting row is read as any other (so it names the same resource type and id), and then only its key
        is used.
        """
        number = normalise(values["nhs_number"])
        if not number:
            raise RowProblem(
                Reason.NO_NHS_NUMBER, f"Line {line}: the {self.column('nhs_number')} column is empty."
            )
        if not is_valid(number):
            raise RowProblem(
                Reason.INVALID_NHS_NUMBER,
                f"Line {line}: the {self.column('nhs_number')} column fails the Modulus 11 check.",
            )
        record_id = values["record_id"]
        if not record_id:
            raise RowProblem(
                Reason.INVALID_RESOURCE, f"Line {line}: the {self.column('record_id')} column is empty."
            )
        written_type = values["record_type"]
        record_type = self.mapping.types.get(fold(written_type))
        if record_type is None:
            known = ", ".join(sorted(self.mapping.types))
            raise RowProblem(
                Reason.UNSUPPORTED_TYPE,
                f"Line {line}: record type {written_type!r} is not in this feed's mapping (it knows {known}).",
            )
        target_name = next(
            (
                name
                for name in record_type.targets
                if all(self.has(values, need) for need in TARGETS[name].needs)
            ),
            None,
        )
        if target_name is None:
            wanted = " or ".join(need.replace("|", " or ") for need in TARGETS[record_type.targets[-1]].needs)
            raise RowProblem(
                Reason.INVALID_RESOURCE, f"Line {line}: a {written_type!r} record needs a value for {wanted}."
            )
        target = TARGETS[target_name]
        birth = self.moment(line, values, "birth_date")
        expected = ExpectedPatient(
            family_name=values.get("family_name", ""),
            birth_date=birth.date() if isinstance(birth, datetime) else birth,
        )
        meaning = self.status(line, values)
        is_deleted = meaning == "deleted"
        status = target.statuses.get("closed" if is_deleted else meaning, meaning)
        resource = _BUILDERS[target.resource_type](self, values, target, status, line)
        resource["id"] = fhir_id(record_id)
        meta: JsonObject = {}
        updated = self.moment(line, values, "last_updated")
        if updated is not None:
            meta["lastUpdated"] = _instant(updated)
        if record_type.section:
            meta["tag"] = [{"system": HEADINGS_SYSTEM, "code": record_type.section}]
        if meta:
            resource["meta"] = meta
        return resource, expected, is_deleted

    def has(self, values: dict[str, str], need: str) -> bool:
        return any(values.get(column) for column in need.split("|"))

    def status(self, line: int, values: dict[str, str]) -> str:
        """What the row's status means: one of `csv_mapping.STATUSES`."""
        written = values.get("status", "")
        if written:
            meaning = self.mapping.statuses.get(fold(written)) or STATUS_WORDS.get(fold(written))
            if meaning is None:
                raise RowProblem(
                    Reason.INVALID_RESOURCE,
                    f"Line {line}: status {written!r} is not one this feed knows; map it under 'statuses' to one "
                    f"of {', '.join(STATUSES)}.",
                )
        else:
            meaning = "closed" if values.get("end_date") else "open"
        return meaning

    def moment(self, line: int, values: dict[str, str], name: str) -> date | datetime | None:
        value = values.get(name, "")
        if not value:
            return None
        pattern = self.mapping.formats.get(name, "")
        try:
            parsed = datetime.strptime(value, pattern) if pattern else datetime.fromisoformat(value)
        except ValueError:
            form = pattern or "ISO 8601 (YYYY-MM-DD)"
            raise RowProblem(
                Reason.INVALID_RESOURCE, f"Line {line}: {self.column(name)} is not a date in the form {form}."
            ) from None
        if parsed.time() == datetime.min.time() and parsed.tzinfo is None and _date_only(pattern, value):
            return parsed.date()
        return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=LOCAL_TIME)

    def fhir_moment(self, line: int, values: dict[str, str], name: str) -> str:
        moment = self.moment(line, values, name)
        return "" if moment is None else moment.isoformat()

    def period(self, line: int, values: dict[str, str]) -> JsonObject:
        period = {
            "start": self.fhir_moment(line, values, "date"),
            "end": self.fhir_moment(line, values, "end_date"),
        }
        return {key: value for key, value in period.items() if value}

    def concept(self, values: dict[str, str]) -> JsonObject:
        code, description = values.get("code", ""), values.get("description", "")
        concept: JsonObject = {}
        if code:
            coding = {"system": self.mapping.code_system, "code": code}
            if description:
                coding["display"] = description
            concept["coding"] = [coding]
        if description:
            concept["text"] = description
        return concept

    def subject(self, values: dict[str, str]) -> JsonObject:
        return {"identifier": {"system": NHS_NUMBER_SYSTEM, "value": normalise(values["nhs_number"])}}

    def identifier(self, values: dict[str, str]) -> JsonObject:
        return {"system": self.identifier_system, "value": values["record_id"]}

    def organisation(self) -> JsonObject:
        organisation = self.feed.organisation
        return {
            "identifier": {"system": ODS_SYSTEM, "value": organisation.ods_code},
            "display": organisation.name,
        }

    def team(self, values: dict[str, str]) -> JsonObject:
        """The row's team, by the council's code for it, or nothing when the row names none."""
        code = values.get("team_code", "")
        if not code:
            return {}
        return _compact(
            {
                "type": "CareTeam",
                "identifier": {"system": f"{self.identifier_system}:team", "value": code},
                "display": values.get("team_name", ""),
            }
        )


def _date_only(pattern: str, value: str) -> bool:
    if pattern:
        return not any(directive in pattern for directive in ("%H", "%I", "%M", "%S", "%p", "%z", "%X", "%c"))
    return len(value) == 10


def _instant(moment: date | datetime) -> str:
    if isinstance(moment, datetime):
        return moment.isoformat()
    return datetime(moment.year, moment.month, moment.day, tzinfo=LOCAL_TIME).isoformat()


def _compact(resource: JsonObject) -> JsonObject:
    """Leaves out empty values: FHIR forbids empty strings, objects and lists."""
    return {key: value for key, value in resource.items() if value not in ("", {}, [], None)}


def _episode(b: RowBuilder, values: dict[str, str], target: Target, status: str, line: int) -> JsonObject:
    concept = b.concept(values)
    team = b.team(values)
    return _compact(
        {
            "resourceType": "EpisodeOfCare",
            "identifier": [b.identifier(values)],
            "status": status,
            "type": [concept] if concept else [],
            "patient": b.subject(values),
            "managingOrganization": b.organisation(),
            "period": b.period(line, values),
            "team": [team] if team else [],
        }
    )


def _care_plan(b: RowBuilder, values: dict[str, str], target: Target, status: str, line: int) -> JsonObject:
    concept = b.concept(values)
    return _compact(
        {
            "resourceType": "CarePlan",
            "identifier": [b.identifier(values)],
            "status": status,
            "intent": "plan",
            "category": [concept] if concept.get("coding") else [],
            "title": values.get("description", ""),
            "subject": b.subject(values),
            "period": b.period(line, values),
        }
    )


def _questionnaire_response(
    b: RowBuilder, values: dict[str, str], target: Target, status: str, line: int
) -> JsonObject:
    description = values.get("description", "")
    items = [{"linkId": "description", "text": "Description", "answer": [{"valueString": description}]}]
    return _compact(
        {
            "resourceType": "QuestionnaireResponse",
            "identifier": b.identifier(values),
            "questionnaire": values["questionnaire"],
            "status": status,
            "subject": b.subject(values),
            "authored": b.fhir_moment(line, values, "date"),
            "item": items if description else [],
        }
    )


def _observation(b: RowBuilder, values: dict[str, str], target: Target, status: str, line: int) -> JsonObject:
    period = b.period(line, values)
    category = {"coding": [{"system": OBSERVATION_CATEGORY, "code": target.category}]}
    return _compact(
        {
            "resourceType": "Observation",
            "identifier": [b.identifier(values)],
            "status": status,
            "category": [category],
            "code": b.concept(values),
            "subject": b.subject(values),
            "effectivePeriod": period if "end" in period else {},
            "effectiveDateTime": period.get("start", "") if "end" not in period else "",
        }
    )


def _flag(b: RowBuilder, values: dict[str, str], target: Target, status: str, line: int) -> JsonObject:
    category = []
    if target.category == "safeguarding":
        # The mapping files a Flag under safeguarding when its category says so.
        category = [
            {
                "coding": [{"system": FLAG_CATEGORY, "code": "safety", "display": "Safety"}],
                "text": "Safeguarding",
            }
        ]
    return _compact(
        {
            "resourceType": "Flag",
            "identifier": [b.identifier(values)],
            "status": status,
            "category": category,
            "code": b.concept(values),
            "subject": b.subject(values),
            "period": b.period(line, values),
        }
    )


def _service_request(
    b: RowBuilder, values: dict[str, str], target: Target, status: str, line: int
) -> JsonObject:
    team = b.team(values)
    return _compact(
        {
            "resourceType": "ServiceRequest",
            "identifier": [b.identifier(values)],
            "status": status,
            "intent": "order",
            "code": b.concept(values),
            "subject": b.subject(values),
            "authoredOn": b.fhir_moment(line, values, "date"),
            # A referral row naming one of the council's teams is one that team received.
            "performer": [team, b.organisation()] if team else [],
        }
    )


_BUILDERS: dict[str, Callable[[RowBuilder, dict[str, str], Target, str, int], JsonObject]] = {
    "EpisodeOfCare": _episode,
    "CarePlan": _care_plan,
    "QuestionnaireResponse": _questionnaire_response,
    "Observation": _observation,
    "Flag": _flag,
    "ServiceRequest": _service_request,
}
