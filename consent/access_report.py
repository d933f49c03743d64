"""A patient's access report: every access to their record (and the records merged into it) in words, for the
patient's subject access request (CSV, kept with the request) and the privacy officer (page, PDF and CSV).

What always holds: each access names the organisation, the role in words, what was done and its outcome, and the
basis in words (the relationship's provenance, or the grant's reason); the PDF is in plain words for the patient, with
no codes or usernames; a CSV cell that a spreadsheet would run as a formula is defused.
"""

import csv
import io
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date

from django.utils import timezone
from fpdf import FPDF
from fpdf.enums import XPos, YPos

from audit.models import AccessEvent
from consent.letters import ICO_CONTACT, LETTER_FONT_FAMILY, letter_font_files
from consent.letters import TEAM as LETTER_TEAM
from consent.models import (
    BreakGlassGrant,
    LegitimateRelationship,
    SelfClaimedRelationship,
)
from consent.policy import relationship_provenance
from consent.roles import JobRole
from records.models import MAX_MERGE_HOPS, Organisation, Patient

# The patient's access report.

REPORT_HEADER = ("When (UTC)", "User", "Job role", "Organisation", "Action", "Purpose", "Outcome", "Basis")
# A spreadsheet would run a cell that starts with one of these as a formula.
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_safe(value: str) -> str:
    """The cell as written, or with a leading apostrophe when a spreadsheet would run it as a formula."""
    return f"'{value}" if value.startswith(_FORMULA_STARTS) else value


def patient_record_ids(patient: Patient) -> list[int]:
    """The patient's record and every record merged into it (whose accesses are the patient's too)."""
    ids = [patient.pk]
    frontier = [patient.pk]
    for _ in range(MAX_MERGE_HOPS):
        frontier = [
            pk for pk in Patient.objects.filter(merged_into__in=frontier).values_list("pk", flat=True)
        ]
        frontier = [pk for pk in frontier if pk not in ids]
        if not frontier:
            break
        ids += frontier
    return ids


def role_in_words(code: str) -> str:
    """A job role for staff reading the trail, with its code ("Clinical practitioner (R8000)"), or the code alone."""
    if not code:
        return ""
    try:
        return f"{JobRole(code).label} ({code})"
    except ValueError:
        return code


# How a patient is told who looked: the role in everyday words, by organisation kind where it matters.
_ROLE_FOR_PATIENT: dict[str, str] = {
    JobRole.CLINICAL_PRACTITIONER: "A clinician",
    JobRole.NURSE: "A nurse",
    JobRole.HEALTH_PROFESSIONAL: "A health professional",
    JobRole.ADMIN_CLINICAL_SUPPORT: "A receptionist or administrator",
    JobRole.SOCIAL_CARE_PRACTITIONER: "A social worker",
    JobRole.PRIVACY_OFFICER: "A privacy officer",
}
# What was done, as (done, tried to do) for the patient.
_ACTION_FOR_PATIENT: dict[str, tuple[str, str]] = {
    AccessEvent.Action.SEARCH: ("searched for your record", "search for your record"),
    AccessEvent.Action.VIEW_RECORD: ("looked at your record", "look at your record"),
    AccessEvent.Action.VIEW_SECTION: ("looked at part of your record", "look at part of your record"),
    AccessEvent.Action.VIEW_DOCUMENT: (
        "looked at a document in your record",
        "look at a document in your record",
    ),
    AccessEvent.Action.EXPORT: (
        "downloaded information about your record",
        "download information about your record",
    ),
    AccessEvent.Action.DECLARE_RELATIONSHIP: (
        "said they were caring for you, to see your record",
        "say they were caring for you, to see your record",
    ),
    AccessEvent.Action.BREAK_GLASS: (
        "used emergency access to your record",
        "use emergency access to your record",
    ),
    AccessEvent.Action.END_GRANT: ("ended their access to your record", "end their access to your record"),
    AccessEvent.Action.READ_AUDIT: (
        "looked at the list of who has seen your record",
        "look at the list of who has seen your record",
    ),
    AccessEvent.Action.REVEAL: (
        "looked at information a partner sent about you, to fix a problem with it",
        "look at information a partner sent about you",
    ),
    AccessEvent.Action.MATCH_PATIENT: (
        "matched your request to your record",
        "match a request to your record",
    ),
    AccessEvent.Action.OBJECTION_OVERRIDE: (
        "saw information you asked not to be shared, to keep you or someone else safe",
        "see information you asked not to be shared",
    ),
}
_BASIS_FOR_PATIENT: dict[str, str] = {
    LegitimateRelationship.Basis.REGISTERED_PRACTICE: "because you are registered there",
    LegitimateRelationship.Basis.CARE_EVENT: "because you are being cared for there",
    LegitimateRelationship.Basis.CASELOAD: "because you are on one of their caseloads",
    LegitimateRelationship.Basis.REFERRAL: "because you were referred to them",
}
_PURPOSE_FOR_PATIENT: dict[str, str] = {
    AccessEvent.Purpose.AUDIT: "to check that your record is used properly",
    AccessEvent.Purpose.FEED_SUPPORT: "to fix a problem with information sent about you",
    AccessEvent.Purpose.PATIENTS_RIGHTS: "to deal with your request or objection",
}
# The basis `consent.policy.decide` writes: a relationship by id, or a personal grant by reference.
_RELATIONSHIP_BASIS = re.compile(r"^(?P<kind>[a-z-]+):(?P<ods>\w*) relationship (?P<id>\d+)")
_GRANT_BASIS = re.compile(r"^(?P<kind>self-claim|break-glass):(?P<ods>\w*) (?P<reference>\S+)")


@dataclass(frozen=True)
class AccessLine:
    """One access event about a patient, in words: for the privacy officer's page and CSV, and the patient's PDF."""

    event: AccessEvent
    role: str
    organisation_name: str
    organisation: str
    action: str
    purpose: str
    outcome: str
    # Where the basis names a relationship, its provenance; a self-claim or break-glass, its reason.
    basis_words: str
    # For the patient: one sentence, no codes.
    told_to_patient: str


@dataclass(frozen=True)
class BasisSources:
    organisations: dict[str, tuple[str, str]]
    relationships: dict[int, LegitimateRelationship]
    grants: dict[str, SelfClaimedRelationship | BreakGlassGrant]


def basis_sources_for(events: list[AccessEvent]) -> BasisSources:
    """What the events' bases name, each kind read in one query, whatever the number of events."""
    relationship_ids = set()
    references = set()
    for event in events:
        if found := _RELATIONSHIP_BASIS.match(event.basis):
            relationship_ids.add(int(found["id"]))
        elif found := _GRANT_BASIS.match(event.basis):
            references.add(found["reference"])
    relationships = LegitimateRelationship.objects.filter(pk__in=relationship_ids).select_related(
        "group__care_team", "source_feed__organisation"
    )
    # Each kind is asked for even when no basis names one, so the queries are the same for every patient.
    grants: dict[str, SelfClaimedRelationship | BreakGlassGrant] = {
        claim.reference: claim for claim in SelfClaimedRelationship.objects.filter(reference__in=references)
    }
    grants.update(
        {glass.reference: glass for glass in BreakGlassGrant.objects.filter(reference__in=references)}
    )
    return BasisSources(
        organisations={
            ods: (name, kind)
            for ods, name, kind in Organisation.objects.values_list("ods_code", "name", "kind")
        },
        relationships={relationship.pk: relationship for relationship in relationships},
        grants=grants,
    )


def basis_in_words(event: AccessEvent, sources: BasisSources) -> tuple[str, str]:
    """The basis in words for staff, and the kind of basis (a relationship basis, or self-claim or break-glass)."""
    if found := _RELATIONSHIP_BASIS.match(event.basis):
        relationship = sources.relationships.get(int(found["id"]))
        if relationship is not None:
            return relationship_provenance(relationship), found["kind"]
        label = dict(LegitimateRelationship.Basis.choices).get(found["kind"], found["kind"])
        return f"{label}; relationship {found['id']}, since replaced", found["kind"]
    if found := _GRANT_BASIS.match(event.basis):
        grant = sources.grants.get(found["reference"])
        described = "Self-claimed relationship" if found["kind"] == "self-claim" else "Break-glass access"
        if grant is None:
            return f"{described} {found['reference']}", found["kind"]
        return (
            f"{described} {grant.reference}: {grant.get_reason_code_display()}: {grant.reason_text}",
            found["kind"],
        )
    return event.basis, ""


def _told_to_patient(event: AccessEvent, sources: BasisSources, basis_kind: str) -> str:
    name, kind = sources.organisations.get(event.organisation_ods, ("", ""))
    who = _ROLE_FOR_PATIENT.get(event.job_role, "A member of staff")
    if event.job_role == JobRole.CLINICAL_PRACTITIONER and kind == Organisation.Kind.GP_PRACTICE:
        who = "A GP"
    if name:
        who = f"{who} at {name}"
    done, tried = _ACTION_FOR_PATIENT.get(event.action, ("used your record", "use your record"))
    if event.outcome != AccessEvent.Outcome.ALLOWED:
        return f"{who} tried to {tried}, but was not allowed to."
    found = _GRANT_BASIS.match(event.basis)
    grant = sources.grants.get(found["reference"]) if found else None
    if basis_kind == "self-claim":
        why = " saying they were caring for you"
    elif basis_kind == "break-glass":
        why = " using emergency access"
    else:
        why = f" {_BASIS_FOR_PATIENT.get(basis_kind) or _PURPOSE_FOR_PATIENT.get(event.purpose, '')}".rstrip()
    given = ""
    if grant is not None:
        given = f"{grant.get_reason_code_display()}: {grant.reason_text}"
    elif event.action in (AccessEvent.Action.DECLARE_RELATIONSHIP, AccessEvent.Action.BREAK_GLASS):
        given = event.reason
    sentence = f"{who} {done}{why}."
    return f"{sentence} The reason they gave: {given.rstrip('. ')}." if given else sentence


def patient_access_lines(patient: Patient, *, newest_first: bool = False) -> list[AccessLine]:
    """Every access event about the patient and the records merged into theirs, in words, oldest first (or newest
    first). Events about anyone else are never in it. The organisation is named, the role and action are words,
    and the basis says where a relationship came from or why a grant was made.

    Reading it is reading the audit about a patient: only the door calls it, and audits it.
    """
    order = ("-occurred_at", "-id") if newest_first else ("occurred_at", "id")
    events = list(AccessEvent.objects.filter(patient_id__in=patient_record_ids(patient)).order_by(*order))
    sources = basis_sources_for(events)
    actions = dict(AccessEvent.Action.choices)
    purposes = dict(AccessEvent.Purpose.choices)
    outcomes = dict(AccessEvent.Outcome.choices)
    lines = []
    for event in events:
        ods = event.organisation_ods
        name = sources.organisations.get(ods, ("", ""))[0]
        basis_words, basis_kind = basis_in_words(event, sources)
        lines.append(
            AccessLine(
                event=event,
                role=role_in_words(event.job_role),
                organisation_name=name or ods,
                organisation=f"{name} ({ods})" if name else ods,
                action=actions.get(event.action, event.action),
                purpose=purposes.get(event.purpose, event.purpose),
                outcome=outcomes.get(event.outcome, event.outcome),
                basis_words=basis_words,
                told_to_patient=_told_to_patient(event, sources, basis_kind),
            )
        )
    return lines


def _csv_text(lines: Iterable[AccessLine], *, in_words: bool) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(REPORT_HEADER + (("Basis in words", "Reason") if in_words else ()))
    for line in lines:
        event = line.event
        row = (
            event.occurred_at.astimezone(UTC).isoformat(timespec="seconds"),
            event.username,
            line.role,
            line.organisation,
            line.action,
            line.purpose,
            line.outcome,
            event.basis,
        ) + ((line.basis_words, event.reason) if in_words else ())
        writer.writerow([spreadsheet_safe(value) for value in row])
    return out.getvalue()


def patient_access_report(patient: Patient) -> str:
    """Every access event about the patient, oldest first, as CSV: when, who (user, job role, organisation), what
    action, for what purpose, allowed or denied, and on what basis. Events about anyone else are never in it.

    Reading it is reading the audit about a patient: only the door calls it, and audits it.
    """
    return _csv_text(patient_access_lines(patient), in_words=False)


def access_report_csv(lines: Iterable[AccessLine]) -> str:
    """The privacy officer's CSV of the lines: `patient_access_report`'s columns, then the basis in words and the
    reason given."""
    return _csv_text(lines, in_words=True)


def access_report_pdf(patient: Patient, lines: Iterable[AccessLine], *, today: date | None = None) -> bytes:
    """The lines as a PDF a patient can read: dated, addressed to them by name, each access one sentence in plain
    words (who, where, what, why, or that they were refused) with its date and time, no codes.

    Set in the letters' DejaVu Sans (`consent.letters`); raises `LetterFontMissing` without it.
    """
    pdf = FPDF(format="A4")
    for style, path in letter_font_files().items():
        pdf.add_font(LETTER_FONT_FAMILY, style, str(path))
    pdf.set_title("Who has looked at your shared care record")
    pdf.set_author(LETTER_TEAM)
    pdf.set_margins(20, 20, 20)
    pdf.add_page()
    pdf.set_font(LETTER_FONT_FAMILY, "B", 14)
    pdf.multi_cell(0, 8, "Who has looked at your shared care record", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.set_font(LETTER_FONT_FAMILY, size=11)
    name = f"{patient.given_name} {patient.family_name}".strip() or "the patient"
    paragraphs = [
        f"For {name}, made on {_day_words(today or timezone.localdate())} by the {LETTER_TEAM}.",
        "Every time someone searches for, looks at or downloads your shared care record, it is recorded. "
        "This is the full list, newest first, including anyone who tried and was not allowed.",
    ]
    for text in paragraphs:
        pdf.multi_cell(0, 5.5, text, align="L", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        pdf.ln(2)
    shown = False
    for line in lines:
        shown = True
        moment = timezone.localtime(line.event.occurred_at)
        pdf.set_font(LETTER_FONT_FAMILY, "B", 11)
        pdf.multi_cell(
            0, 5.5, f"{_day_words(moment.date())} at {moment:%H:%M}", new_x=XPos.LMARGIN, new_y=YPos.NEXT
        )
        pdf.set_font(LETTER_FONT_FAMILY, size=11)
        pdf.multi_cell(0, 5.5, line.told_to_patient, align="L", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        pdf.ln(2)
    if not shown:
        pdf.multi_cell(0, 5.5, "No one has looked at your record.", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.ln(2)
    pdf.multi_cell(
        0,
        5.5,
        "If you think someone looked at your record who should not have, please tell us and we will look into it. "
        f"You can also complain to the Information Commissioner's Office: {ICO_CONTACT}.",
        align="L",
        new_x=XPos.LMARGIN,
        new_y=YPos.NEXT,
    )
    return bytes(pdf.output())


def _day_words(moment: date) -> str:
    return f"{moment.day} {moment:%B %Y}"
