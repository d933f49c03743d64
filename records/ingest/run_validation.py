"""Validating and mapping a run's resources: in the run's own process, or through the validation pool's workers.

What always holds: a worker's verdict on a resource is what `validate` would have given (the same functions on the
same input), and it is used only for the very resource it was made for (same type and id, same kind of input);
whatever no worker answered for is validated here. Every resource validated, here or in a worker, valid or not, is
counted once (`Tally.validated`).
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import fields
from itertools import islice, takewhile
from operator import attrgetter, itemgetter
from typing import Any

from records.ingest.fhir import InvalidResource, JsonObject, validate_json, validate_xml
from records.ingest.items import Deletion, ResourceUnit
from records.ingest.mapping import SUPPORTED_TYPES, MappedEntry, MappedJson, map_resource
from records.ingest.tally import Tally
from records.ingest.validation_pool import ValidationPool
from records.ingest.validation_worker import Verdict, piece_verdicts

# The items the first pass keeps for the second, by source index: (position, item), in order.
Kept = dict[int, list[tuple[int, Deletion | ResourceUnit]]]

# The fields of a MappedJson but its resource, in order: what a validation worker sends back of a mapping
# (`mapped_apart`), a tuple because it pickles, and is made a MappedJson again, in a fraction of the time.
_APART = tuple(mapped_field.name for mapped_field in fields(MappedJson) if mapped_field.name != "resource")
_apart = attrgetter(*_APART)


def mapped_apart(resource: JsonObject) -> tuple[Any, ...]:
    """`map_resource` in a validation worker, without the resource itself: the run holds that already."""
    values: tuple[Any, ...] = _apart(map_resource(resource))
    return values


def _mapped_with(mapped: MappedEntry | tuple[Any, ...], resource: JsonObject) -> MappedEntry:
    """A mapping made here, or one a worker sent back (`mapped_apart`) given back its resource."""
    if isinstance(mapped, MappedEntry):
        return mapped
    return MappedJson(resource=resource, **dict(zip(_APART, mapped, strict=True)))


class RunValidation:
    """The run's side of validation: what it hands the pool, and the verdict on each resource when it needs it."""

    def __init__(self, tally: Tally, pool: ValidationPool | None, kept: Kept) -> None:
        self.tally = tally
        self.pool = pool
        self.kept = kept  # the first pass's items, shared with the run (see `validate_piece`)
        self.verdicts: dict[int, Verdict] = {}  # what the workers found, by position
        # By source index: how many of its resources a worker could validate.
        self.to_validate: list[int] = []
        self.submitted = 0  # sources before this one are with the pool

    def submit(self, end: int, starts: Sequence[int], read: int, held_in: list[list[int]]) -> None:
        """Hand the sources before `end`, read and checked, to the validation pool; those with nothing to validate
        are not sent at all. `starts`: each source's first position; `read`: the positions read so far;
        `held_in`: by source, the positions held unchanged, not to validate."""
        for index in range(self.submitted, end):
            held = held_in[index]
            if self.pool is not None and len(held) < self.to_validate[index]:
                stop = starts[index + 1] if index + 1 < len(starts) else read
                self.pool.submit(index, range(starts[index], stop), frozenset(held))
            held_in[index] = []
        self.submitted = max(self.submitted, end)

    def checked(self, unit: ResourceUnit, position: int) -> tuple[JsonObject, MappedEntry | None]:
        """The validated resource and, when a validation worker made it, its mapping; raises InvalidResource."""
        verdict = self.verdicts.pop(position, None)
        if verdict is None and self.pool is not None:
            # The first verdict asked for of a piece the pool shares: the worker's answers, or the run's to do.
            self.verdicts.update(self.pool.verdicts(position, self.validate_piece))
            verdict = self.verdicts.pop(position, None)
        if verdict is not None and verdict[:2] == (unit.resource_type, unit.source_id):
            _, _, outcome, mapped = verdict
            if isinstance(outcome, str):
                self.tally.validated += 1
                raise InvalidResource(outcome)
            resource = unit.json if outcome is None else outcome
            if resource is not None and (outcome is None) == (unit.json is not None):
                self.tally.validated += 1
                return resource, _mapped_with(mapped, resource) if mapped is not None else None
        return self.validate(unit), None

    def validate_piece(self, index: int, positions: range, skip: frozenset[int]) -> dict[int, Verdict] | None:
        """Verdicts (see `validation_worker.Verdict`) on the resources at `positions` of input `index`, but `skip`,
        made here while the run waits for a validation worker; None when the run no longer holds that input's
        items."""
        kept = self.kept.get(index)
        if kept is None:
            return None
        first = bisect.bisect_left(kept, positions.start, key=itemgetter(0))
        items = takewhile(lambda entry: entry[0] < positions.stop, islice(kept, first, None))
        return piece_verdicts(items, types=SUPPORTED_TYPES, skip=skip, mapper=map_resource)

    def validate(self, unit: ResourceUnit) -> JsonObject:
        """Validate a resource in the run's own process; raises InvalidResource."""
        self.tally.validated += 1
        if unit.json is not None:
            return validate_json(unit.json)
        return validate_xml(unit.element)
