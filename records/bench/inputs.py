"""What the bench ingests: the Synthea bundles of ../shared/data, made matchable in memory, and their feeds.

The files in ../shared/data are only read, never changed.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from itertools import count
from pathlib import Path

from records import nhs_number
from records.bench.rows import BenchmarkError
from records.ingest.matching import NHS_NUMBER_SYSTEM
from records.models import Feed, Organisation
from records.services import feed_upsert, organisation_upsert

DATA = Path(__file__).resolve().parents[3] / "shared" / "data"
SYNTHEA = DATA / "synthea-r4"
UKCORE = DATA / "ukcore-examples"
# NHS number serials per use, far enough apart that the patients of one use are never those of another.
_SERIALS_PER_USE = 10_000

Texts = list[tuple[str, bytes]]


def _synthea_nhs_numbers(use: int) -> Iterator[str]:
    """Valid NHS numbers from 999 8xx xxxx: the 999 range is never issued to people, and the demo counts up from
    999 000 0001, so the two never meet. Each `use` gets its own numbers, so its patients are new."""
    for serial in count(use * _SERIALS_PER_USE):
        first_nine = f"9998{serial:05d}"
        check = nhs_number.check_digit(first_nine)
        if check is not None:
            yield f"{first_nine}{check}"


def synthea_texts(limit: int | None, *, use: int = 0) -> Texts:
    """The first `limit` Synthea bundles (all when None) as (name, bytes), an NHS number added to each Patient.

    Synthea refers to the Patient by the Bundle entry's fullUrl (urn:uuid:...), which the ingester resolves
    within the Bundle, so no reference needs rewriting: the NHS number on the Patient is what was missing.
    """
    numbers = _synthea_nhs_numbers(use)
    texts: Texts = []
    for path in sorted(SYNTHEA.glob("*.json"))[:limit]:
        bundle = json.loads(path.read_bytes())
        for entry in bundle["entry"]:
            resource = entry["resource"]
            if resource["resourceType"] == "Patient":
                identifier = {"system": NHS_NUMBER_SYSTEM, "value": next(numbers)}
                resource["identifier"] = [identifier, *resource.get("identifier", [])]
        texts.append((path.name, json.dumps(bundle, ensure_ascii=False).encode("utf-8")))
    if not texts:
        raise BenchmarkError(f"no Synthea bundles found in {SYNTHEA}")
    return texts


def synthea_feed(ods_code: str) -> Feed:
    """A GP practice's feed, allowed to create patients as GP feeds are."""
    organisation = organisation_upsert(
        ods_code=ods_code, name=f"Synthea practice {ods_code}", kind=Organisation.Kind.GP_PRACTICE
    )
    return feed_upsert(
        code=f"bench-{ods_code.lower()}",
        organisation=organisation,
        name="Synthea GP record",
        sections=[],
        can_create_patients=True,
    )
