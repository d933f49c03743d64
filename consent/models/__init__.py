"""The consent domain, split by concept; everything is importable from `consent.models` as before.

- `consent.models.access`: who may see what (roles, role profiles, staff identities, care teams, relationships,
  personal grants, feed support);
- `consent.models.sensitive`: the sensitive code sets and the SNOMED CT hierarchy;
- `consent.models.patients_rights`: objections, subject access requests and the national data opt-out.
"""

from consent.models.access import (
    FEED_SUPPORT_PERMISSION,
    BreakGlassGrant,
    CareTeam,
    CareTeamMembership,
    FeedSupportAssignment,
    LegitimateRelationship,
    PersonalGrant,
    Role,
    SelfClaimedRelationship,
    StaffIdentity,
    StaffProfile,
)
from consent.models.patients_rights import NationalOptOut, Objection, SubjectAccessRequest
from consent.models.sensitive import ConceptIsA, SensitiveCode

__all__ = [
    "FEED_SUPPORT_PERMISSION",
    "BreakGlassGrant",
    "CareTeam",
    "CareTeamMembership",
    "ConceptIsA",
    "FeedSupportAssignment",
    "LegitimateRelationship",
    "NationalOptOut",
    "Objection",
    "PersonalGrant",
    "Role",
    "SelfClaimedRelationship",
    "SensitiveCode",
    "StaffIdentity",
    "StaffProfile",
    "SubjectAccessRequest",
]
