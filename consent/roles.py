"""National RBAC job roles and what each may see.

Which sections a role opens is data in this one table, read only by `consent.policy.decide`; there is no
string look-up of rule names anywhere else.
"""

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

ROLE_SECTIONS: dict[str, frozenset[Section]] = {
    JobRole.CLINICAL_PRACTITIONER: DEMOGRAPHIC_SECTIONS | CLINICAL_SECTIONS,
    JobRole.NURSE: DEMOGRAPHIC_SECTIONS | CLINICAL_SECTIONS,
    JobRole.HEALTH_PROFESSIONAL: DEMOGRAPHIC_SECTIONS | CLINICAL_SECTIONS,
    JobRole.ADMIN_CLINICAL_SUPPORT: DEMOGRAPHIC_SECTIONS,
    JobRole.SOCIAL_CARE_PRACTITIONER: DEMOGRAPHIC_SECTIONS | _SOCIAL_CARE_SECTIONS,
    # A privacy officer reads the audit, not the record.
    JobRole.PRIVACY_OFFICER: frozenset(),
}

ROLE_ACTIVITIES: dict[str, frozenset[Activity]] = {
    JobRole.CLINICAL_PRACTITIONER: frozenset(
        {Activity.VIEW_DETAILED_RECORD, Activity.VIEW_SUMMARY, Activity.PATIENT_TRACE}
    ),
    JobRole.NURSE: frozenset({Activity.VIEW_DETAILED_RECORD, Activity.VIEW_SUMMARY, Activity.PATIENT_TRACE}),
    JobRole.HEALTH_PROFESSIONAL: frozenset(
        {Activity.VIEW_DETAILED_RECORD, Activity.VIEW_SUMMARY, Activity.PATIENT_TRACE}
    ),
    JobRole.ADMIN_CLINICAL_SUPPORT: frozenset({Activity.PATIENT_TRACE}),
    JobRole.SOCIAL_CARE_PRACTITIONER: frozenset({Activity.VIEW_SUMMARY, Activity.PATIENT_TRACE}),
    JobRole.PRIVACY_OFFICER: frozenset(
        {Activity.EMERGENCY_ACCESS_ALERTS, Activity.SELF_CLAIMED_ALERTS, Activity.ACCESS_SENSITIVE}
    ),
}


def sections_for_role(role: str) -> frozenset[Section]:
    return ROLE_SECTIONS.get(role, frozenset())


def activities_for_role(role: str) -> frozenset[Activity]:
    return ROLE_ACTIVITIES.get(role, frozenset())
