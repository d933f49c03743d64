"""What `consent.policy.decide` reads for one user and one patient: the relationships the user's groups hold with
the patient, the user's own grants on them, and the patient's choices in force. Three statements, asked on every
clinical decision that gets this far, whatever their answers, so that an answer's time tells nothing.

Each is SQL written once here, with every value a parameter, rather than built through the ORM on every call:
building them cost Django far more than PostgreSQL took to answer them, on every record open, search and
document. `consent.policy.visible_patients` states the same relationships, grants and choices as one ORM query
for the list of patients; the policy's tests hold the two to the same answer for every user and patient
(`test_decide_and_visible_patients_never_disagree`, and the access rules matrix).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.db import connection

from consent.models import Objection
from records.models.patients import ACCESS_RECORD_PERMISSION

# A relationship counts while current (begun, and not ended), when held by the user's organisation's group or by
# the group of a team of that organisation the user belongs to, and when it grants access to the record.
_RELATIONSHIPS_SQL = """
SELECT relationship.id, relationship.basis, relationship.source_description, relationship.source_run_id,
       relationship.source_entry_id, team.name, feed.code, feed.name, feed_partner.name
FROM consent_legitimaterelationship AS relationship
JOIN auth_permission AS permission ON permission.id = relationship.permission_id
JOIN django_content_type AS content_type ON content_type.id = permission.content_type_id
LEFT JOIN consent_careteam AS team ON team.group_id = relationship.group_id
LEFT JOIN records_feed AS feed ON feed.id = relationship.source_feed_id
LEFT JOIN records_organisation AS feed_partner ON feed_partner.id = feed.organisation_id
WHERE relationship.content_object_id = %(patient)s
  AND relationship.valid_from <= %(now)s
  AND (relationship.valid_until IS NULL OR relationship.valid_until > %(now)s)
  AND (
      relationship.group_id = %(organisation_group)s
      OR relationship.group_id IN (
          SELECT member_of.group_id
          FROM consent_careteam AS member_of
          JOIN consent_careteammembership AS membership ON membership.team_id = member_of.id
          WHERE membership.user_id = %(user)s AND member_of.organisation_id = %(organisation)s
      )
  )
  AND permission.codename = %(codename)s
  AND content_type.app_label = 'records'
"""

# A grant counts only under the role profile it was made under, and only from its start until it expires or is
# ended. Self-claims first, then each kind soonest to end first.
_GRANTS_SQL = """
SELECT false AS is_break_glass, reference, reason_code, valid_until
FROM consent_selfclaimedrelationship
WHERE content_object_id = %(patient)s AND user_id = %(user)s AND staff_profile_id = %(profile)s
  AND valid_from <= %(now)s AND valid_until > %(now)s AND ended_at IS NULL
UNION ALL
SELECT true, reference, reason_code, valid_until
FROM consent_breakglassgrant
WHERE content_object_id = %(patient)s AND user_id = %(user)s AND staff_profile_id = %(profile)s
  AND valid_from <= %(now)s AND valid_until > %(now)s AND ended_at IS NULL
ORDER BY is_break_glass, valid_until, reference
"""

# The objections in force, and the national data opt-out, which counts only where the deployment says so: then it
# is withheld like a whole-record objection, and no decision on it allows a break-glass to set it aside.
_CHOICES_SQL = """
SELECT reference, upheld_whole_record, upheld_sections, upheld_from_partners, upheld_to_partners,
       break_glass_may_override
FROM consent_objection
WHERE patient_id = %(patient)s AND status = ANY(%(enforced)s)
UNION ALL
SELECT %(opt_out)s, true, '{}', '{}', '{}', false
FROM consent_nationaloptout
WHERE patient_id = %(patient)s AND %(opt_out_counts)s
"""


@dataclass(frozen=True)
class HeldRelationship:
    """A current relationship with the patient, as the decision and its audit row name it."""

    pk: int
    basis: str
    source_description: str
    source_run_id: int | None
    source_entry_id: int | None
    # The care team holding it, or None when the organisation's own group does.
    holder: str | None
    # The feed whose data created it, by code and name, and the partner sending that feed; None when none did.
    feed_code: str | None
    feed_name: str | None
    feed_partner: str | None


@dataclass(frozen=True)
class HeldGrant:
    is_break_glass: bool
    reference: str
    reason_code: str
    valid_until: datetime


@dataclass(frozen=True)
class ChoiceRow:
    """One upheld objection, or the national data opt-out (`reference` as the caller named it)."""

    reference: str
    whole_record: bool
    sections: list[str]
    from_partners: list[str]
    to_partners: list[str]
    may_be_overridden: bool


def relationships_held(
    *, user_id: int, organisation_id: int, organisation_group_id: int, patient_id: int, now: datetime
) -> list[HeldRelationship]:
    """The user's organisation's and teams' current relationships with the patient that open the record."""
    with connection.cursor() as cursor:
        cursor.execute(
            _RELATIONSHIPS_SQL,
            {
                "patient": patient_id,
                "now": now,
                "organisation_group": organisation_group_id,
                "user": user_id,
                "organisation": organisation_id,
                "codename": ACCESS_RECORD_PERMISSION,
            },
        )
        rows = cursor.fetchall()
    return [HeldRelationship(*row) for row in rows]


def grants_held(*, user_id: int, profile_id: int, patient_id: int, now: datetime) -> list[HeldGrant]:
    """The user's current self-claims and break-glass grants on the patient under this role profile."""
    with connection.cursor() as cursor:
        cursor.execute(
            _GRANTS_SQL, {"patient": patient_id, "user": user_id, "profile": profile_id, "now": now}
        )
        rows = cursor.fetchall()
    return [HeldGrant(*row) for row in rows]


def choices_in_force(*, patient_id: int, opt_out_reference: str, opt_out_counts: bool) -> list[ChoiceRow]:
    """The patient's objections in force (`Objection.ENFORCED`) and, when `opt_out_counts`, their national data
    opt-out (named `opt_out_reference`), by reference."""
    with connection.cursor() as cursor:
        cursor.execute(
            _CHOICES_SQL,
            {
                "patient": patient_id,
                "enforced": [str(status) for status in Objection.ENFORCED],
                "opt_out": opt_out_reference,
                "opt_out_counts": opt_out_counts,
            },
        )
        rows = cursor.fetchall()
    return sorted((ChoiceRow(*row) for row in rows), key=lambda choice: choice.reference)
