"""A CSV feed's mapping as a form, and its preview on a sample extract.

The form has one field per column the ingester reads (the required ones required), the date formats and settings,
and one row per record type and per status word; it builds the JSON `Feed.csv_mapping` holds and checks it with
`csv_mapping_check`, the one check the ingester uses, so a mapping the form accepts is one a run accepts and every
problem is named at once.

The preview reads an uploaded sample through the feed's real CSV reader under the mapping as typed (saved or not):
the columns found and missing, each row's mapped values and what the row would become, or why it would be
quarantined. The sample is read from the request only: never stored, never ingested, no patient looked up.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from typing import Any

from django import forms
from django.core.exceptions import ValidationError

from records.backoffice.dry_read import ReadItem, dry_read
from records.ingest.formats import csv_extract
from records.ingest.formats.csv_mapping import (
    FORMAT_KEYS,
    OPTIONAL_COLUMNS,
    REQUIRED_COLUMNS,
    SETTING_KEYS,
    SNOMED_CT,
    STATUSES,
    TARGETS,
    CsvMappingError,
    csv_mapping_check,
    fold,
)
from records.models import Feed
from records.sections import CLINICAL_SECTIONS, SECTION_ORDER

PREVIEW_ROWS = 10
SAMPLE_MAX_BYTES = 5 * 1024 * 1024

# What each column holds, in the page's words; the keys are the mapping's own (`csv_mapping`).
COLUMN_LABELS: dict[str, str] = {
    "nhs_number": "NHS number",
    "record_type": "Record type",
    "record_id": "Record id (the council's reference)",
    "family_name": "Family name",
    "birth_date": "Date of birth",
    "date": "Date (start)",
    "end_date": "End date",
    "status": "Status",
    "description": "Description",
    "code": "Code",
    "questionnaire": "Questionnaire",
    "last_updated": "Last updated",
    "team_code": "Team code",
    "team_name": "Team name",
}
FORMAT_LABELS = {
    "birth_date_format": "Date of birth format",
    "date_format": "Date format (start and end)",
    "last_updated_format": "Last updated format",
}
COLUMN_KEYS: tuple[str, ...] = (*REQUIRED_COLUMNS, *OPTIONAL_COLUMNS)
KNOWN_KEYS = frozenset({*COLUMN_KEYS, *SETTING_KEYS})
TARGET_CHOICES = [(name, name) for name in TARGETS]
SECTION_CHOICES = [("", "The resource's own heading")] + [
    (section.value, section.label) for section in SECTION_ORDER if section in CLINICAL_SECTIONS
]
STATUS_CHOICES = [(status, status) for status in STATUSES]


class CsvMappingForm(forms.Form):
    """The columns and settings of a mapping; record types and statuses are the two formsets beside it."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for key in COLUMN_KEYS:
            self.fields[key] = forms.CharField(
                label=COLUMN_LABELS[key],
                required=key in REQUIRED_COLUMNS,
                max_length=200,
                help_text="The heading of the column in the extract.",
                error_messages={"required": f"Name the column that holds the {COLUMN_LABELS[key].lower()}."},
            )
        for key, label in FORMAT_LABELS.items():
            self.fields[key] = forms.CharField(
                label=label,
                required=False,
                max_length=40,
                help_text="As strptime writes it, such as %d/%m/%Y. Empty: ISO 8601 (2024-03-31).",
            )
        self.fields["code_system"] = forms.CharField(
            label="Code system",
            required=False,
            max_length=200,
            help_text=f"The system of the code column. Empty: SNOMED CT ({SNOMED_CT}).",
        )
        self.fields["delimiter"] = forms.CharField(
            label="Delimiter",
            required=False,
            max_length=1,
            strip=False,
            help_text="One character between fields. Empty: a comma.",
        )

    def column_fields(self) -> list[forms.BoundField]:
        return [self[key] for key in COLUMN_KEYS]

    def setting_fields(self) -> list[forms.BoundField]:
        return [self[key] for key in (*FORMAT_KEYS, "code_system", "delimiter")]


class RecordTypeForm(forms.Form):
    word = forms.CharField(label="Record type as written", max_length=100, required=False)
    resource = forms.ChoiceField(label="Becomes", choices=[("", "—"), *TARGET_CHOICES], required=False)
    fallback = forms.ChoiceField(
        label="Otherwise (when a row lacks what that needs)",
        choices=[("", "—"), *TARGET_CHOICES],
        required=False,
    )
    section = forms.ChoiceField(label="Under the heading", choices=SECTION_CHOICES, required=False)

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        if cleaned.get("word") and not cleaned.get("resource"):
            self.add_error("resource", "Say what this record type becomes.")
        if cleaned.get("resource") and not cleaned.get("word"):
            self.add_error("word", "Give the record type as the extract writes it.")
        return cleaned


class StatusForm(forms.Form):
    word = forms.CharField(label="Status as written", max_length=100, required=False)
    meaning = forms.ChoiceField(label="Means", choices=[("", "—"), *STATUS_CHOICES], required=False)

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        if cleaned.get("word") and not cleaned.get("meaning"):
            self.add_error("meaning", "Say what this status means.")
        return cleaned


RecordTypeFormSet = forms.formset_factory(RecordTypeForm, extra=2)
StatusFormSet = forms.formset_factory(StatusForm, extra=2)


class SampleForm(forms.Form):
    sample = forms.FileField(
        label="A sample extract (CSV)",
        required=False,
        help_text=(
            f"Its first {PREVIEW_ROWS} rows are shown as they would map. Nothing is stored or ingested, and no "
            "patient is looked up."
        ),
    )

    def clean_sample(self) -> Any:
        sample = self.cleaned_data.get("sample")
        if sample is not None and sample.size > SAMPLE_MAX_BYTES:
            raise ValidationError(
                f"A sample may be at most {SAMPLE_MAX_BYTES // (1024 * 1024)} MB; send fewer rows."
            )
        return sample


@dataclass
class MappingForms:
    """The page's three forms, bound or not; `mapping` is the checked JSON once `is_valid` passed."""

    columns: CsvMappingForm
    record_types: Any
    statuses: Any
    problems: list[str] = field(default_factory=list)
    mapping: dict[str, Any] = field(default_factory=dict)

    def is_valid(self) -> bool:
        valid = all(form.is_valid() for form in (self.columns, self.record_types, self.statuses))
        if not valid:
            return False
        mapping = _mapping_of(self.columns, self.record_types, self.statuses)
        try:
            csv_mapping_check(mapping)
        except CsvMappingError as error:
            self.problems = error.problems
            return False
        self.mapping = mapping
        return True


def mapping_forms(stored: object, data: Any = None) -> MappingForms:
    """The forms for a feed's stored mapping (`data` None) or as POSTed."""
    if data is not None:
        return MappingForms(
            CsvMappingForm(data, prefix="map"),
            RecordTypeFormSet(data, prefix="types"),
            StatusFormSet(data, prefix="statuses"),
        )
    raw = stored if isinstance(stored, dict) else {}
    initial = {key: raw[key] for key in (*COLUMN_KEYS, *SETTING_KEYS) if isinstance(raw.get(key), str)}
    types = _as_dict(raw.get("types"))
    statuses = _as_dict(raw.get("statuses"))
    return MappingForms(
        CsvMappingForm(initial=initial, prefix="map"),
        RecordTypeFormSet(
            initial=[_type_initial(word, value) for word, value in types.items()], prefix="types"
        ),
        StatusFormSet(
            initial=[{"word": word, "meaning": meaning} for word, meaning in statuses.items()],
            prefix="statuses",
        ),
    )


def unknown_keys(stored: object) -> list[str]:
    """Keys of a stored mapping the ingester does not know (a typo, or an old key): the form leaves them out."""
    return sorted(set(stored) - KNOWN_KEYS) if isinstance(stored, dict) else []


def _as_dict(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _type_initial(word: str, value: object) -> dict[str, str]:
    section = ""
    if isinstance(value, dict):
        section = str(value.get("section", ""))
        value = value.get("resource", "")
    targets = [part.strip() for part in str(value).split("|")]
    return {
        "word": word,
        "resource": targets[0],
        "fallback": targets[1] if len(targets) > 1 else "",
        "section": section,
    }


def _mapping_of(columns: CsvMappingForm, record_types: Any, statuses: Any) -> dict[str, Any]:
    """The mapping's JSON from the cleaned forms: empty fields left out, so the ingester's defaults apply."""
    mapping: dict[str, Any] = {}
    for key in (*COLUMN_KEYS, *FORMAT_KEYS, "code_system"):
        value = columns.cleaned_data.get(key, "").strip()
        if value:
            mapping[key] = value
    if columns.cleaned_data.get("delimiter"):
        mapping["delimiter"] = columns.cleaned_data["delimiter"]
    types: dict[str, Any] = {}
    for row in record_types.cleaned_data:
        if not row.get("word"):
            continue
        resource = "|".join(target for target in (row["resource"], row.get("fallback", "")) if target)
        types[row["word"].strip()] = (
            {"resource": resource, "section": row["section"]} if row["section"] else resource
        )
    mapping["types"] = types
    words = {row["word"].strip(): row["meaning"] for row in statuses.cleaned_data if row.get("word")}
    if words:
        mapping["statuses"] = words
    return mapping


# The preview.


@dataclass(frozen=True)
class PreviewRow:
    line: int
    values: list[tuple[str, str]]  # (what the column holds, its value in this row)
    outcome: ReadItem | None


@dataclass(frozen=True)
class Preview:
    header: list[str]
    found: list[tuple[str, str]]  # (what, column) mapped and in the sample
    missing: list[tuple[str, str]]  # (what, column) mapped and not in the sample
    rows: list[PreviewRow]
    file_problem: str = ""  # the whole file would be quarantined, e.g. its header does not fit


def csv_preview(feed: Feed, mapping: dict[str, Any], data: bytes, location: str) -> Preview:
    """The first rows of a sample as the feed would read them under `mapping` (checked already); writes nothing."""
    checked = csv_mapping_check(mapping)
    trial = Feed(
        code=feed.code, organisation_id=feed.organisation_id, format=Feed.Format.CSV, csv_mapping=mapping
    )
    items = dry_read(csv_extract.reader(trial), location, data, limit=PREVIEW_ROWS + 1)
    by_line = {item.line: item for item in items if item.line is not None}
    file_problem = next((item.problem for item in items if item.line is None), "")
    text = data.decode("utf-8-sig", errors="replace")
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=checked.delimiter)
    header = next(reader, [])
    folded = [fold(heading) for heading in header]
    found, missing, positions = [], [], {}
    for key, column in checked.columns.items():
        label = COLUMN_LABELS[key]
        if fold(column) in folded:
            found.append((label, column))
            positions[key] = folded.index(fold(column))
        else:
            missing.append((label, column))
    rows: list[PreviewRow] = []
    previous = reader.line_num
    try:
        for row in reader:
            line, previous = previous + 1, reader.line_num
            if not any(value.strip() for value in row):
                continue
            values = [
                (COLUMN_LABELS[key], row[index].strip() if index < len(row) else "")
                for key, index in positions.items()
            ]
            rows.append(PreviewRow(line, values, by_line.get(line)))
            if len(rows) == PREVIEW_ROWS:
                break
    except csv.Error:
        # The reader's own verdict on that line is in the items; the rows before it are shown.
        pass
    return Preview(header, found, missing, rows, file_problem)
