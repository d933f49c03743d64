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
        auditlog.register(LegitimateRelationship)
        auditlog.register(SelfClaimedRelationship)
        auditlog.register(BreakGlassGrant)
        auditlog.register(SensitiveCode)
        # Patients' rights: every step of a case, with its actor.
        auditlog.register(Objection)
        # The access report is kept once, on the request; the change history says only that it changed.
        auditlog.register(SubjectAccessRequest, exclude_fields=["report"])
        auditlog.register(NationalOptOut)
        # Who may read which partner's feed data, and who granted it.
        auditlog.register(FeedSupportAssignment)
