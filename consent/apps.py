from typing import Any

from django.apps import AppConfig
from django.db.models.signals import post_migrate


def _roles_seed(sender: AppConfig, **kwargs: Any) -> None:
    # Reference data the rules need, created the way Django creates permissions: after every migrate and after a
    # test database is flushed. It only adds missing roles, so edits made in the back office stay.
    from consent.services import roles_seed

    roles_seed()


def _sensitive_defaults_seed(sender: AppConfig, **kwargs: Any) -> None:
    # The curated default of the sensitive sets, added the same way and for the same reasons as the roles.
    from consent.sensitive import sensitive_defaults_seed

    sensitive_defaults_seed()


def secret_mask(value: str) -> str:
    """What the change history shows of a password hash: only that it was set, never any part of it."""
    return "(set)" if value else ""


# The change history is kept for years and read by privacy officers beyond the team that works a case, so it
# records that these fields changed, never what they say; each field's current value stays on its own record.
# Who the requester says the patient is (names, date of birth, number, address, contact) identifies the patient,
# and the reasons and notes are free text that can describe their care. The clinical input is kept whole: a second
# opinion replaces the first on the case, and the case's own history, read only by the IG team working it, is where
# the first is kept; the privacy officers' change history shows only that it changed (records/access_audit.py).
OBJECTION_MASKED = [
    "given_name",
    "family_name",
    "birth_date",
    "nhs_number",
    "address",
    "postcode",
    "contact_detail",
    "requester_name",
    "reason_text",
    "extension_reason",
    "identity_note",
    "decision_note",
    "withdrawn_note",
]
# A request's history is read only by the IG team on the request's own page, which shows on purpose who asked, the
# number and date of birth they gave, and why it needed longer; its notes are free text that can describe care.
SUBJECT_ACCESS_MASKED = ["note", "withdrawn_note"]
# Why a clinician gave themselves access ("unconscious in ED with chest pain") is clinical; it is kept on the grant,
# its access event and its alert, where a privacy officer reviews it.
GRANT_MASKED = ["reason_text"]
# A derived relationship's description comes from the clinical entry behind it (an admission's ward, a referral's
# specialty); the entry and run it came from stay as ids.
RELATIONSHIP_MASKED = ["source_description"]
OPT_OUT_MASKED = ["note"]
WITHHELD_MASK = "records.apps.withheld_mask"


class ConsentConfig(AppConfig):
    name = "consent"
    verbose_name = "Access rules"

    def ready(self) -> None:
        from auditlog.registry import auditlog
        from django.contrib.auth import get_user_model
        from django.contrib.auth.models import Group

        from consent.models import (
            BreakGlassGrant,
            CareTeam,
            CareTeamMembership,
            FeedSupportAssignment,
            LegitimateRelationship,
            NationalOptOut,
            Objection,
            Role,
            SelfClaimedRelationship,
            SensitiveCode,
            StaffProfile,
            SubjectAccessRequest,
        )

        post_migrate.connect(_roles_seed, sender=self)
        # Who may sign in and with what standing: every change to a user (its active, staff and superuser flags, its
        # groups and direct permissions, a password set by anyone) and to a group, with the actor. A password shows
        # only as set; a login's own last_login is not a change anyone made.
        auditlog.register(
            get_user_model(),
            exclude_fields=["last_login"],
            mask_fields=["password"],
            mask_callable="consent.apps.secret_mask",
            m2m_fields={"groups", "user_permissions"},
        )
        auditlog.register(Group, m2m_fields={"permissions"})
        post_migrate.connect(_sensitive_defaults_seed, sender=self)
        auditlog.register(Role)
        auditlog.register(StaffProfile)
        auditlog.register(CareTeam)
        auditlog.register(CareTeamMembership)
        auditlog.register(
            LegitimateRelationship, mask_fields=RELATIONSHIP_MASKED, mask_callable=WITHHELD_MASK
        )
        auditlog.register(SelfClaimedRelationship, mask_fields=GRANT_MASKED, mask_callable=WITHHELD_MASK)
        auditlog.register(BreakGlassGrant, mask_fields=GRANT_MASKED, mask_callable=WITHHELD_MASK)
        # A sensitive code's display names a condition, not a patient: the code list is reference data, kept whole.
        auditlog.register(SensitiveCode)
        # Patients' rights: every step of a case, with its actor; its status, scope and decision kept whole.
        auditlog.register(Objection, mask_fields=OBJECTION_MASKED, mask_callable=WITHHELD_MASK)
        # The access report is kept once, on the request; the change history says only that it changed.
        auditlog.register(
            SubjectAccessRequest,
            exclude_fields=["report"],
            mask_fields=SUBJECT_ACCESS_MASKED,
            mask_callable=WITHHELD_MASK,
        )
        auditlog.register(NationalOptOut, mask_fields=OPT_OUT_MASKED, mask_callable=WITHHELD_MASK)
        # Who may read which partner's feed data, and who granted it.
        auditlog.register(FeedSupportAssignment)
