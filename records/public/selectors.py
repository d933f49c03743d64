"""What the public pages read: a request's standing, found by its reference and the date of birth given with it.

Always holds: a request is found only when both match, in one query, so a wrong reference and a wrong date of birth
are the same miss; no patient is read, and where a request stands is said in words that do not tell a request
matched to a patient from one that was not.
"""

from dataclasses import dataclass
from datetime import date, datetime

from consent.models import Objection

Status = Objection.Status


@dataclass(frozen=True)
class Standing:
    """Where a request stands, for the person who made it."""

    reference: str
    given_name: str
    family_name: str
    received_at: datetime
    due_at: datetime
    is_extended: bool
    is_open: bool
    title: str
    explanation: str
    # The NHS.UK tag colour for the status: "blue" while open, "green" upheld, "grey" otherwise.
    colour: str
    decided_at: datetime | None


# Whether the IG team matched the request to a patient is not said: checking identity, matched or not, is "being
# checked", and the team writes to the requester with what it found.
_WORDS: dict[str, tuple[str, str, str]] = {
    Status.RECEIVED: (
        "Received",
        "We have your request. We have not started checking it yet.",
        "blue",
    ),
    Status.IDENTITY_VERIFIED: (
        "Being checked",
        "We are checking the details you gave us. We will contact you if we need anything else.",
        "blue",
    ),
    Status.NOT_FOUND: (
        "Being checked",
        "We are checking the details you gave us. We will contact you if we need anything else.",
        "blue",
    ),
    Status.UNDER_REVIEW: (
        "Under review",
        "We are considering your request, with advice from a clinician.",
        "blue",
    ),
    Status.UPHELD: (
        "Upheld",
        "We have agreed to your request. The information you asked about is no longer shared.",
        "green",
    ),
    Status.PARTLY_UPHELD: (
        "Partly upheld",
        "We have agreed to part of your request. We will write to you, or have written to you, to explain which "
        "part and why.",
        "green",
    ),
    Status.NOT_UPHELD: (
        "Not upheld",
        "We could not agree to your request. We will write to you, or have written to you, to explain why.",
        "grey",
    ),
    Status.WITHDRAWN: (
        "Withdrawn",
        "This request has been withdrawn. Your record is shared as it was before you asked.",
        "grey",
    ),
}


def objection_standing(reference: str, birth_date: date) -> Standing | None:
    """The request with this reference, made for someone born on `birth_date`; None when either does not match."""
    objection = (
        Objection.objects.filter(reference=reference, birth_date=birth_date)
        .only(
            "reference",
            "status",
            "given_name",
            "family_name",
            "received_at",
            "due_at",
            "extension_reason",
            "decided_at",
        )
        .first()
    )
    if objection is None:
        return None
    title, explanation, colour = _WORDS[objection.status]
    return Standing(
        reference=objection.reference,
        given_name=objection.given_name,
        family_name=objection.family_name,
        received_at=objection.received_at,
        due_at=objection.due_at,
        is_extended=bool(objection.extension_reason),
        is_open=objection.is_open or objection.status == Status.NOT_FOUND,
        title=title,
        explanation=explanation,
        colour=colour,
        decided_at=objection.decided_at,
    )


def objection_due(reference: str) -> datetime | None:
    """When the request with this reference is due; for the confirmation page of the visitor who sent it."""
    due: datetime | None = (
        Objection.objects.filter(reference=reference).values_list("due_at", flat=True).first()
    )
    return due
