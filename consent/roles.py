"""National RBAC job roles, their activities, and the roles sharedcare starts with.

What each role opens lives in the `consent.Role` table, which the back office edits and `consent.policy` reads;
`STARTING_ROLES` is what a new deployment is seeded with (migration `0004`, and `roles_reset` in tests). There is no
string look-up of rule names anywhere else.
"""

from dataclasses import dataclass

from django.db import models

from records.sections import CLINICAL_SECTIONS, DEMOGRAPHIC_SECTIONS, Section

ROLE_CODE_SYSTEM = "https://fhir.nhs.uk/Id/sds-role-code"


class JobRole(models.TextChoices):
    CLINICAL_PRACTITIONER = "R8000", "Clinical practitioner"
    NURSE = "R8001", "Nurse"
    HEALTH_PROFESSIONAL = "R8003", "Health professional"
    ADMIN_CLINICAL_SUPPORT = "R8008", "Admin / clinical support"
    # Social care staff have no national RBAC code; a local code keeps the same shape.
    SOCIAL_CARE_PRACTITIONER = "L9001", "Social care practitioner"
    PRIVACY_OFFICER = "R0001", "Privacy officer"


class Activity(models.TextChoices):
    VIEW_DETAILED_RECORD = "B0360", "View detailed health records"
    VIEW_SUMMARY = "B0370", "View summary"
    PATIENT_TRACE = "B0264", "Patient trace (demographics)"
    ACCESS_SENSITIVE = "B1611", "Access sensitive (S-flagged) records"
    EMERGENCY_ACCESS_ALERTS = "B0015", "Receive emergency-access alerts"
    SELF_CLAIMED_ALERTS = "B0016", "Receive self-claimed relationship alerts"


@dataclass(frozen=True)
class RoleSeed:
    code: str
    name: str
    sections: frozenset[Section]
    activities: frozenset[Activity]
    may_self_claim: bool = False
    may_break_glass: bool = False


_SOCIAL_CARE_SECTIONS = frozenset(
    {
        Section.ALERTS,
        Section.LEGAL,
        Section.SAFEGUARDING,
        Section.ALLERGIES,
        Section.PLANS,
        Section.REFERRALS,
        Section.ASSESSMENTS,
        Section.SOCIAL_CONTEXT,
        Section.PROFESSIONAL_CONTACTS,
    }
)
_CLINICAL_ACTIVITIES = frozenset(
    {Activity.VIEW_DETAILED_RECORD, Activity.VIEW_SUMMARY, Activity.PATIENT_TRACE}
)

STARTING_ROLES: tuple[RoleSeed, ...] = (
    # B1611 goes to the clinical practitioner, as national guidance gives it to clinicians with a relationship:
    # they see a restricted (S-flagged) patient's address, phone and practice, and every showing is audited.
    RoleSeed(
        JobRole.CLINICAL_PRACTITIONER,
        JobRole.CLINICAL_PRACTITIONER.label,
        DEMOGRAPHIC_SECTIONS | CLINICAL_SECTIONS,
        _CLINICAL_ACTIVITIES | {Activity.ACCESS_SENSITIVE},
        may_self_claim=True,
        may_break_glass=True,
    ),
    RoleSeed(
        JobRole.NURSE,
        JobRole.NURSE.label,
        DEMOGRAPHIC_SECTIONS | CLINICAL_SECTIONS,
        _CLINICAL_ACTIVITIES,
        may_self_claim=True,
        may_break_glass=True,
    ),
    RoleSeed(
        JobRole.HEALTH_PROFESSIONAL,
        JobRole.HEALTH_PROFESSIONAL.label,
        DEMOGRAPHIC_SECTIONS | CLINICAL_SECTIONS,
        _CLINICAL_ACTIVITIES,
        may_self_claim=True,
        may_break_glass=True,
    ),
    RoleSeed(
        JobRole.ADMIN_CLINICAL_SUPPORT,
        JobRole.ADMIN_CLINICAL_SUPPORT.label,
        DEMOGRAPHIC_SECTIONS,
        frozenset({Activity.PATIENT_TRACE}),
    ),
    RoleSeed(
        JobRole.SOCIAL_CARE_PRACTITIONER,
        JobRole.SOCIAL_CARE_PRACTITIONER.label,
        DEMOGRAPHIC_SECTIONS | _SOCIAL_CARE_SECTIONS,
        frozenset({Activity.VIEW_SUMMARY, Activity.PATIENT_TRACE}),
        may_self_claim=True,
    ),
    # A privacy officer reads the audit and reviews alerts, not the record.
    RoleSeed(
        JobRole.PRIVACY_OFFICER,
        JobRole.PRIVACY_OFFICER.label,
        frozenset(),
        frozenset({Activity.EMERGENCY_ACCESS_ALERTS, Activity.SELF_CLAIMED_ALERTS}),
    ),
)
