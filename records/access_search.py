"""The door for finding a patient by name and date of birth, when the NHS number is not to hand.

What always holds:
- only patients `consent.policy.visible_patients(user, search)` holds are listed, each asked of `decide()` again and
  left out if it refuses: a patient the user has no relationship or grant with is not found this way, whatever is
  typed (the NHS-number search is the way to be offered a self-claim or break-glass, one patient at a time);
- the birth date matches exactly and first (an index), so the names compared are those of the few patients the user
  may see born that day, and `visible_patients` is asked about that day's patients only (`among`), so a search's
  work does not grow with the population; the family name matches by trigram similarity, pg_trgm's measure,
  computed here because the embedded PostgreSQL that development and the tests run on ships without pg_trgm;
- a retired (merged) record that matches lists its survivor, once;
- at most `NAME_SEARCH_LISTED` are listed, most similar first, and the answer says when more matched;
- a restricted patient's postcode and GP practice are listed only to a user whose decision shows restricted
  demographics; a postcode typed never narrows a restricted patient's match, so an answer cannot confirm it;
- every search is audited before it returns: one allowed `search` event per patient listed, so each listed
  patient's access report shows it, or one `not-found` event when none is. The event's query names the criteria
  without the full name typed (`NameSearchCriteria.described`): the listed patients are on the events already.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

from django.db import transaction
from django.db.models.functions import Coalesce
from django.http import HttpRequest

from audit.models import AccessEvent
from audit.services import AccessFacts, access_event_record
from consent.policy import Action, decide, visible_patients
from records.access import User, actor_of, context_of
from records.models import Patient

# The most patients one name search lists; past it the user is asked for more of the patient's details.
NAME_SEARCH_LISTED = 10
# pg_trgm's default `similarity_threshold`: one wrong letter in a five-letter name still scores 0.33.
NAME_SIMILARITY_MIN = 0.3
# Patients the user may see born on one day are a handful; a source's placeholder birth date could make it hundreds.
# Past this many the search is not scored (a partial answer could leave out the patient sought) and says so.
CANDIDATES_MAX = 500

_WORD = re.compile(r"[^\W_]+")


def _trigrams(text: str) -> frozenset[str]:
    """pg_trgm's trigrams: each word in lower case, two spaces before and one after, cut into threes."""
    grams: set[str] = set()
    for word in _WORD.findall(text.lower()):
        padded = f"  {word} "
        grams.update(padded[start : start + 3] for start in range(len(padded) - 2))
    return frozenset(grams)


def name_similarity(typed: str, held: str) -> float:
    """pg_trgm's `similarity()`: the trigrams the two share over all the trigrams of either, 0 to 1."""
    mine, theirs = _trigrams(typed), _trigrams(held)
    if not mine or not theirs:
        return 0.0
    return len(mine & theirs) / len(mine | theirs)


def postcode_normalise(text: str) -> str:
    return "".join(text.split()).upper()


@dataclass(frozen=True)
class NameSearchCriteria:
    """What the user typed, already of the right shape (the form checks it)."""

    family_name: str
    birth_date: date
    given_name: str = ""
    postcode: str = ""
    sex: str = ""

    def described(self) -> str:
        """The criteria for the audit row: the birth date, the family name's first letters and length, and which
        other details were given, never their values."""
        name = self.family_name.strip().upper()
        start = name[:3] if len(name) > 4 else name[:1]
        given = [
            label
            for label, value in (
                ("given name", self.given_name),
                ("postcode", self.postcode),
                ("sex", self.sex),
            )
            if value
        ]
        words = f"by name: family name {start}... ({len(name)} letters), born {self.birth_date:%Y-%m-%d}"
        return f"{words}; with {', '.join(given)}" if given else words


@dataclass(frozen=True)
class PatientListed:
    """One patient in a name search's answer: what the list shows. `postcode` and `practice` are None when the
    patient is restricted and the user may not see their whereabouts."""

    public_id: uuid.UUID
    name: str
    birth_date: date | None
    sex: str
    nhs_number: str
    postcode: str | None
    practice: str | None


@dataclass(frozen=True)
class NameSearchResult:
    listed: tuple[PatientListed, ...]
    # More patients matched than are listed: the user should add the given name or postcode.
    more: bool = False
    # Too many patients the user may see share the birth date for a name search to be sure of its answer.
    too_many: bool = False


def _matches(candidate: Patient, criteria: NameSearchCriteria) -> float | None:
    """How similar the candidate's family name is to the one typed, or None when any criterion rules it out."""
    score = name_similarity(criteria.family_name, candidate.family_name)
    if score < NAME_SIMILARITY_MIN:
        return None
    if criteria.given_name:
        typed, held = criteria.given_name.strip().lower(), candidate.given_name.lower()
        if not held.startswith(typed) and name_similarity(typed, held) < NAME_SIMILARITY_MIN:
            return None
    if criteria.sex and candidate.sex != criteria.sex:
        return None
    if (
        criteria.postcode
        and not candidate.is_restricted
        and not postcode_normalise(candidate.postcode).startswith(postcode_normalise(criteria.postcode))
    ):
        return None
    return score


def _ranked(candidates: Sequence[Patient], criteria: NameSearchCriteria) -> list[Patient]:
    """The survivors of the matching records, best match first, each once."""
    best: dict[int, tuple[float, Patient]] = {}
    for candidate in candidates:
        score = _matches(candidate, criteria)
        if score is None:
            continue
        survivor = candidate.merged_into if candidate.merged_into_id is not None else candidate
        if survivor is None:
            continue
        if survivor.pk not in best or score > best[survivor.pk][0]:
            best[survivor.pk] = (score, survivor)
    ordered = sorted(
        best.values(),
        key=lambda pair: (-pair[0], pair[1].family_name.upper(), pair[1].given_name, pair[1].pk),
    )
    return [patient for _, patient in ordered]


def _listed(patient: Patient, shows_whereabouts: bool) -> PatientListed:
    hidden = patient.is_restricted and not shows_whereabouts
    practice = patient.registered_practice
    return PatientListed(
        public_id=patient.public_id,
        name=patient.full_name,
        birth_date=patient.birth_date,
        sex=patient.get_sex_display(),
        nhs_number=patient.nhs_number_display,
        postcode=None if hidden else patient.postcode,
        practice=None if hidden else (f"{practice.name} ({practice.ods_code})" if practice else ""),
    )


def patient_name_search_for_user(
    *, user: User, criteria: NameSearchCriteria, request: HttpRequest | None
) -> NameSearchResult:
    """Find the patients this user may see by family name and birth date (and, if given, given name, postcode and
    sex), auditing the search whatever its answer. See the module docstring for what always holds."""
    born = Patient.objects.filter(birth_date=criteria.birth_date)
    survivors = born.annotate(survivor=Coalesce("merged_into_id", "pk")).values_list("survivor", flat=True)
    # Asked about that day's survivors only, read first as a list of ids, the rules read each one's relationships,
    # grants and objections by its id: the statement's work is that of one day's births, not of the population.
    visible = visible_patients(user, Action.SEARCH, among=list(survivors)).values("pk")
    with transaction.atomic():
        candidates = list(
            born.alias(survivor_id=Coalesce("merged_into_id", "pk"))
            .filter(survivor_id__in=visible)
            .select_related("registered_practice", "merged_into__registered_practice")
            .order_by("pk")[: CANDIDATES_MAX + 1]
        )
        too_many = len(candidates) > CANDIDATES_MAX
        ranked = [] if too_many else _ranked(candidates, criteria)
        shown = ranked[:NAME_SEARCH_LISTED]
        listed: list[tuple[Patient, PatientListed, str]] = []
        for patient in shown:
            decision = decide(user, patient, Action.SEARCH)
            if decision.allowed:
                listed.append(
                    (patient, _listed(patient, decision.shows_restricted_demographics), decision.basis)
                )
        more = len(ranked) > NAME_SEARCH_LISTED
        actor, context, query = actor_of(user), context_of(request), criteria.described()
        for position, (patient, _, basis) in enumerate(listed, start=1):
            access_event_record(
                actor,
                AccessFacts(
                    action=AccessEvent.Action.SEARCH,
                    outcome=AccessEvent.Outcome.ALLOWED,
                    patient_id=patient.pk,
                    query=query,
                    basis=basis,
                    reason=f"listed {position} of {len(listed)}{'; more matched' if more else ''}",
                ),
                context,
            )
        if not listed:
            access_event_record(
                actor,
                AccessFacts(
                    action=AccessEvent.Action.SEARCH,
                    outcome=AccessEvent.Outcome.NOT_FOUND,
                    query=query,
                    reason="too many patients share the birth date to search by name" if too_many else "",
                ),
                context,
            )
    return NameSearchResult(listed=tuple(row for _, row, _ in listed), more=more, too_many=too_many)
