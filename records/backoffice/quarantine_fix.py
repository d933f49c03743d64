"""Correcting a quarantined record's payload before it is replayed: the form, its check, and the save.

Always holds: the check reads the corrected text with the record's feed's own reader and validates each resource
(`dry_read`), writing nothing and looking up no patient; a correction is saved only for a pending record, through
save(), so django-auditlog records that the payload changed (its hash, never the payload) and who changed it.
"""

from __future__ import annotations

import hashlib
from typing import Any

from django import forms
from django.core.exceptions import ValidationError
from django.db import transaction

from records.backoffice.dry_read import ReadItem, dry_read
from records.ingest.formats.csv_mapping import CsvMappingError
from records.ingest.pipeline import reader_for
from records.models import QuarantinedRecord

# A corrected payload is one partner message or row; the check shows what the feed would read of it, up to this.
FIX_CHECK_LIMIT = 50


class QuarantineFixForm(forms.Form):
    """The payload as the partner sent it, to correct; valid when the feed's reader and FHIR validation take it."""

    payload = forms.CharField(
        label="What the partner sent",
        widget=forms.Textarea(attrs={"rows": 18, "cols": 90, "spellcheck": "false"}),
        strip=False,
        help_text=(
            "Correct it here. Check shows what the feed would read from it; Replay saves it and ingests it through "
            "the real pipeline. The partner's original is replaced, and the change log records that it changed."
        ),
    )

    def __init__(self, data: Any = None, *, record: QuarantinedRecord) -> None:
        super().__init__(data, initial={"payload": record.raw_payload})
        self.record = record
        self.checked: list[ReadItem] = []
        self.problems: list[str] = []

    @property
    def payload_changed(self) -> bool:
        return _lines(self.cleaned_data["payload"]) != _lines(self.record.raw_payload)

    def clean_payload(self) -> str:
        payload: str = self.cleaned_data["payload"]
        if not payload.strip():
            raise ValidationError("The payload is empty.")
        # The textarea sends CRLF line breaks; keep the partner's own where nothing else changed.
        payload = self.record.raw_payload if _lines(payload) == _lines(self.record.raw_payload) else payload
        self.checked, self.problems = payload_check(self.record, payload)
        return payload


def _lines(text: str) -> str:
    return text.replace("\r\n", "\n")


def payload_check(record: QuarantinedRecord, payload: str) -> tuple[list[ReadItem], list[str]]:
    """What the record's feed would read from `payload` and what is wrong with it; nothing is written."""
    location = record.location or f"quarantined record {record.pk}"
    try:
        read = reader_for(record.feed)
    except CsvMappingError as error:
        return [], [f"The feed's CSV mapping is not valid, so nothing it sends can be read: {error}"]
    items = dry_read(read, location, payload.encode("utf-8"), limit=FIX_CHECK_LIMIT)
    problems = [f"{item.location}: {item.problem}" for item in items if item.problem]
    if not items:
        problems.append("Nothing in it would be read as a record.")
    return items, problems


def quarantine_payload_fix(record: QuarantinedRecord, payload: str) -> None:
    """Replace a pending record's payload with its correction, before it is replayed.

    Saved through save(), so django-auditlog records the change (its hash; never the payload) with the user.
    """
    with transaction.atomic():
        locked = QuarantinedRecord.objects.select_for_update().get(
            pk=record.pk, status=QuarantinedRecord.Status.PENDING
        )
        locked.raw_payload = payload
        locked.payload_hash = hashlib.sha256(payload.encode("utf-8", "surrogateescape")).hexdigest()
        locked.save(update_fields=["raw_payload", "payload_hash"])
