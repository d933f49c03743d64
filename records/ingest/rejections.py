"""What a run quarantines: each bad record with its reason, location, raw text and the NHS number it names.

What always holds: every rejection is counted once (as quarantined) when it is made, and written in batches in
the run's transaction; a payload already pending for the same reason stays as the one row to fix and replay
(`upsert.quarantined_insert`). A rejection never raises: bad input never stops the good.
"""

from __future__ import annotations

import hashlib

from django.utils import timezone

from records.ingest.items import ResourceUnit, clean
from records.ingest.matching import named_nhs_number, well_formed
from records.ingest.tally import Tally
from records.ingest.upsert import QuarantineRow, quarantined_insert
from records.models import Feed, IngestRun


class Rejections:
    """The records a run quarantines, held until `write` (called every `batch_size` and at the end of the run)."""

    def __init__(self, feed: Feed, run: IngestRun, tally: Tally, *, batch_size: int) -> None:
        self.feed = feed
        self.run = run
        self.tally = tally
        self.batch_size = batch_size
        self.rows: list[QuarantineRow] = []

    def of_unit(
        self,
        unit: ResourceUnit,
        reason: str,
        detail: str,
        nhs_number: str = "",
        raw: str | None = None,
        *,
        patient_reference: str = "",
    ) -> None:
        """Quarantine a resource read, as sent (or as `raw`), with the NHS number it names when none is given."""
        self.add(
            unit.location,
            reason,
            detail,
            unit.raw() if raw is None else raw,
            unit.resource_type,
            unit.source_id,
            nhs_number=well_formed(nhs_number) or named_nhs_number(unit.json or {}),
            part=unit.part,
            patient_reference=patient_reference,
        )

    def add(
        self,
        location: str,
        reason: str,
        detail: str,
        raw: str,
        resource_type: str,
        source_id: str,
        *,
        nhs_number: str = "",
        part: str = "",
        patient_reference: str = "",
    ) -> None:
        self.tally.quarantined += 1
        # Resources made from one partner message share its text; each keeps its own row by hashing its part too.
        hashed = f"{part}\n{raw}" if part else raw
        self.rows.append(
            (
                reason,
                clean(detail),
                resource_type[:64],
                source_id[:200],
                location[:500],
                raw,
                hashlib.sha256(hashed.encode("utf-8", "surrogateescape")).hexdigest(),
                well_formed(nhs_number),
                patient_reference,
                timezone.now(),
            )
        )
        if len(self.rows) >= self.batch_size:
            self.write()

    def write(self) -> None:
        """Write the rejections held so far."""
        quarantined_insert(self.feed, self.run, self.rows)
        self.rows.clear()
