"""The declared mapping of a CSV extract: which column holds what, and what each record type becomes.

`Feed.csv_mapping` is checked whole before a run reads anything: every problem is named at once (unknown keys
included, to catch typos), so a council's extract never half-loads under a mapping someone mistyped. The schema,
with an example, is in docs/ingestion.md; `csv_mapping_check` is the one check, for the ingester and for forms.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from records.sections import CLINICAL_SECTIONS

SNOMED_CT = "http://snomed.info/sct"

REQUIRED_COLUMNS = ("nhs_number", "record_type", "record_id")
OPTIONAL_COLUMNS = (
    "family_name",
    "birth_date",
    "date",
    "end_date",
    "status",
    "description",
    "code",
    "questionnaire",
    "last_updated",
    # The council's own code for the team whose caseload a case is on (matched to `consent.CareTeam.code`), and
    # its name; a referral row naming a team is a referral that team received.
    "team_code",
    "team_name",
)
FORMAT_KEYS = {
    "birth_date_format": "birth_date",
    "date_format": "date",
    "last_updated_format": "last_updated",
}
SETTING_KEYS = ("types", "code_system", "delimiter", "statuses", *FORMAT_KEYS)

# The statuses a row can have, whatever words the council uses for them.
# "deleted": the council deleted the record; the row deletes the entry we hold for it, as a FHIR DELETE would.
STATUSES = ("open", "closed", "cancelled", "entered-in-error", "deleted")
STATUS_WORDS = {
    "open": "open",
    "active": "open",
    "current": "open",
    "ongoing": "open",
    "in progress": "open",
    "in-progress": "open",
    "closed": "closed",
    "complete": "closed",
    "completed": "closed",
    "finished": "closed",
    "ended": "closed",
    "inactive": "closed",
    "cancelled": "cancelled",
    "canceled": "cancelled",
    "withdrawn": "cancelled",
    "entered in error": "entered-in-error",
    "entered-in-error": "entered-in-error",
    "deleted": "deleted",
    "removed": "deleted",
}


@dataclass(frozen=True)
class Target:
    """What a record type becomes: a FHIR resource type, its flavour, its status codes and what a row must hold."""

    resource_type: str
    statuses: dict[str, str]  # open/closed/cancelled/entered-in-error -> the resource's own status code
    needs: tuple[str, ...] = ()  # values a row must have, each a tuple of columns of which one is enough
    category: str = ""


TARGETS: dict[str, Target] = {
    "EpisodeOfCare": Target(
        "EpisodeOfCare", {"open": "active", "closed": "finished", "cancelled": "cancelled"}
    ),
    "CarePlan": Target("CarePlan", {"open": "active", "closed": "completed", "cancelled": "revoked"}),
    "QuestionnaireResponse": Target(
        "QuestionnaireResponse",
        {"open": "in-progress", "closed": "completed", "cancelled": "stopped"},
        needs=("questionnaire",),
    ),
    "Observation-survey": Target(
        "Observation",
        {"open": "preliminary", "closed": "final", "cancelled": "cancelled"},
        needs=("code|description",),
        category="survey",
    ),
    "Observation-social-history": Target(
        "Observation",
        {"open": "final", "closed": "final", "cancelled": "cancelled"},
        needs=("code|description",),
        category="social-history",
    ),
    "Flag": Target(
        "Flag", {"open": "active", "closed": "inactive", "cancelled": "inactive"}, needs=("code|description",)
    ),
    "Flag-safeguarding": Target(
        "Flag",
        {"open": "active", "closed": "inactive", "cancelled": "inactive"},
        needs=("code|description",),
        category="safeguarding",
    ),
    "ServiceRequest": Target(
        "ServiceRequest", {"open": "active", "closed": "completed", "cancelled": "revoked"}
    ),
}


class CsvMappingError(ValueError):
    """The feed's CSV mapping is not valid; `problems` names each thing wrong with it."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("The CSV mapping is not valid: " + "; ".join(problems) + ".")
        self.problems = problems


@dataclass(frozen=True)
class RecordType:
    targets: tuple[str, ...]  # alternatives, in order: the first whose needs the row meets is used
    section: str = ""  # a PRSB heading that overrides the resource's default section


@dataclass(frozen=True)
class CsvMapping:
    columns: dict[str, str]  # field -> column heading
    types: dict[str, RecordType]  # record type as written (case and spaces folded) -> what it becomes
    formats: dict[str, str] = field(default_factory=dict)  # field -> strptime format; absent means ISO 8601
    code_system: str = SNOMED_CT
    delimiter: str = ","
    statuses: dict[str, str] = field(default_factory=dict)  # folded source word -> one of STATUSES


def fold(value: str) -> str:
    """Record types, statuses and headings compare without regard to case or runs of spaces."""
    return " ".join(value.split()).casefold()


def _check_format(key: str, value: object, problems: list[str]) -> str:
    if not isinstance(value, str) or "%" not in value:
        problems.append(f"{key} must be a strptime format such as %d/%m/%Y")
        return ""
    sample = datetime(2001, 2, 3, 4, 5, 6)
    try:
        usable = datetime.strptime(sample.strftime(value), value).date() == sample.date()
    except ValueError:
        usable = False
    if not usable:
        problems.append(f"{key} {value!r} cannot read back the dates it writes; it needs day, month and year")
        return ""
    return value


def _record_type(name: str, value: object, problems: list[str]) -> RecordType | None:
    where = f"types[{name!r}]"
    section = ""
    if isinstance(value, dict):
        unknown = sorted(set(value) - {"resource", "section"})
        if unknown:
            problems.append(f"{where} has unknown key(s) {', '.join(unknown)}; it takes resource and section")
        section = value.get("section", "")
        if section and section not in CLINICAL_SECTIONS:
            problems.append(f"{where}.section {section!r} is not a clinical PRSB heading")
        value = value.get("resource")
    if not isinstance(value, str) or not value.strip():
        problems.append(f"{where} must name what the record type becomes, one of {', '.join(TARGETS)}")
        return None
    targets = tuple(part.strip() for part in value.split("|"))
    unknown = [target for target in targets if target not in TARGETS]
    if unknown:
        problems.append(f"{where}: {', '.join(unknown)} is not one of {', '.join(TARGETS)}")
        return None
    return RecordType(targets, section)


def csv_mapping_check(raw: object) -> CsvMapping:
    """The mapping, checked; raises CsvMappingError naming every problem (unknown keys included, to catch typos)."""
    problems: list[str] = []
    if not isinstance(raw, dict) or not raw:
        raise CsvMappingError(
            ["the feed has no CSV mapping (a JSON object naming its columns and record types)"]
        )
    known = {*REQUIRED_COLUMNS, *OPTIONAL_COLUMNS, *SETTING_KEYS}
    for key in sorted(set(raw) - known):
        problems.append(f"unknown key {key!r}")
    columns: dict[str, str] = {}
    for key in (*REQUIRED_COLUMNS, *OPTIONAL_COLUMNS):
        value = raw.get(key)
        if value is None and key in OPTIONAL_COLUMNS:
            continue
        if not isinstance(value, str) or not value.strip():
            problems.append(f"{key} must name a column of the extract")
            continue
        columns[key] = value.strip()
    formats = {}
    for key, column in FORMAT_KEYS.items():
        if key in raw:
            if column not in columns:
                problems.append(f"{key} is given but no {column} column is mapped")
            formats[column] = _check_format(key, raw[key], problems)
    if "date" in formats:
        formats["end_date"] = formats["date"]
    types: dict[str, RecordType] = {}
    declared = raw.get("types")
    if not isinstance(declared, dict) or not declared:
        problems.append('types must map each record type to what it becomes, e.g. {"case": "EpisodeOfCare"}')
        declared = {}
    for name, value in declared.items():
        folded = fold(str(name))
        if not folded:
            problems.append("types has an empty record type")
        elif folded in types:
            problems.append(f"types names {name!r} twice (record types compare without case or extra spaces)")
        record_type = _record_type(str(name), value, problems)
        if record_type is None:
            continue
        types[folded] = record_type
        # An alternative whose needs no mapped column can meet is skipped for every row; none left is an error.
        if not any(buildable(TARGETS[target], columns) for target in record_type.targets):
            needs = sorted({need for target in record_type.targets for need in TARGETS[target].needs})
            wanted = " and ".join(" or ".join(need.split("|")) for need in needs)
            problems.append(f"types[{name!r}] can never be built: it needs the {wanted} column mapped")
    statuses: dict[str, str] = {}
    given = raw.get("statuses", {})
    if not isinstance(given, dict):
        problems.append("statuses must map the extract's status words to " + ", ".join(STATUSES))
        given = {}
    for word, meaning in given.items():
        if meaning not in STATUSES:
            problems.append(f"statuses[{word!r}] must be one of {', '.join(STATUSES)}")
        else:
            statuses[fold(str(word))] = meaning
    code_system = raw.get("code_system", SNOMED_CT)
    if not isinstance(code_system, str) or ":" not in code_system or " " in code_system:
        problems.append("code_system must be a URI such as http://snomed.info/sct")
    delimiter = raw.get("delimiter", ",")
    if not isinstance(delimiter, str) or len(delimiter) != 1 or delimiter in '\r\n"':
        problems.append("delimiter must be one character other than a quote or a line break")
    if problems:
        raise CsvMappingError(problems)
    return CsvMapping(columns, types, formats, str(code_system), str(delimiter), statuses)


def buildable(target: Target, columns: dict[str, str]) -> bool:
    return all(any(column in columns for column in need.split("|")) for need in target.needs)
