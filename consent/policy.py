"""The rules of who may see what. The functions here are the only places they live.

Two kinds of access, each with its object rule and its list rule side by side, sharing one ladder of checks:
- direct care: `decide()` for one patient and `visible_patients()` for the list, both built on `_clinical_standing`;
- feed support (the back office): `feed_support_decide()` for one partner's feed data and
  `supported_organisations()` for the list, both built on `_feed_support_standing`.

Deny by default: every rule is one condition on its own line, and a request that passes no rule is refused.
Actions and purposes are `AccessEvent`'s own enumerations, so the rules and the audit trail name them alike.
Nothing else in the project asks whether a user may see a patient.
"""

from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import TypeVar

from django.conf import settings
from django.contrib.auth.base_user import AbstractBaseUser
from django.contrib.auth.models import AnonymousUser, Permission
from django.db.models import OuterRef, Q, QuerySet, Subquery
from django.db.models.functions import JSONObject
from django.utils import timezone

from audit.models import AccessEvent
from consent.decision_reads import HeldRelationship, choices_in_force, grants_held, relationships_held
from consent.models import (
    FEED_SUPPORT_PERMISSION,
    BreakGlassGrant,
    CareTeam,
    FeedSupportAssignment,
    LegitimateRelationship,
    NationalOptOut,
    Objection,
    PersonalGrant,
    Role,
    SelfClaimedRelationship,
    StaffProfile,
)
from consent.roles import Activity
from records.models import Organisation, Patient
from records.models.patients import ACCESS_RECORD_PERMISSION
from records.sections import CLINICAL_SECTIONS, Section

Action = AccessEvent.Action
Purpose = AccessEvent.Purpose
User = AbstractBaseUser | AnonymousUser
G = TypeVar("G", bound=PersonalGrant)

# The actions each kind of access knows; any other action is refused.
CLINICAL_ACTIONS = frozenset({Action.SEARCH, Action.VIEW_RECORD, Action.VIEW_DOCUMENT})
FEED_SUPPORT_ACTIONS = frozenset({Action.SEARCH, Action.VIEW_DOCUMENT, Action.REVEAL})

# When several relationships hold at once, the page names the strongest.
_BASIS_STRENGTH: dict[str, int] = {
    LegitimateRelationship.Basis.REGISTERED_PRACTICE: 0,
    LegitimateRelationship.Basis.CARE_EVENT: 1,
    LegitimateRelationship.Basis.CASELOAD: 2,
    LegitimateRelationship.Basis.REFERRAL: 3,
}

# The session key under which the login step keeps the role profile the user chose.
SELECTED_PROFILE_SESSION_KEY = "selected_staff_profile_id"


class Basis:
    """How an allowed decision came about, beyond the feed-derived relationship bases."""

    SELF_CLAIM = "self-claim"
    BREAK_GLASS = "break-glass"


@dataclass(frozen=True)
class Decision:
    """What one user may see of one patient (or one partner's feed data), and why."""

    allowed: bool
    why_not: str = ""
    # For the audit row: the basis and its holder, e.g. "registered-practice:A81001".
    basis: str = ""
    # The basis alone (a `LegitimateRelationship.Basis` or a `Basis`), and where it came from, for the page.
    basis_kind: str = ""
    provenance: str = ""
    relationship_id: int | None = None
    grant_reference: str = ""
    grant_expires_at: datetime | None = None
    sections: frozenset[Section] = frozenset()
    # Withheld by the patient's upheld objections: clinical sections the role opens, and partners (ODS codes) other
    # than the user's own organisation; empty means nothing withheld on that ground.
    withheld_sections: frozenset[Section] = frozenset()
    withheld_partners: frozenset[str] = frozenset()
    # The objections (by case reference; `NATIONAL_OPT_OUT` for the opt-out) that withheld something from this user,
    # for the audit row. The page never names them.
    objections_applied: tuple[str, ...] = ()
    # On a denial: every other rule passed (the user holds a relationship or a grant), but the patient's upheld
    # objection or national data opt-out withholds the whole record from them, and they are to be told so.
    withholds_whole_record: bool = False
    # The objections a current break-glass for safeguarding sets aside for this access, by case reference.
    overridden_objections: tuple[str, ...] = ()
    withholds_sensitive: bool = True
    # Partners (ODS codes) whose own sensitive and confidential items this user sees: their own organisation's.
    sensitive_visible_from: frozenset[str] = frozenset()
    shows_restricted_demographics: bool = False
    # On a denial for want of a relationship: what this user's role would let them do about it.
    may_self_claim: bool = False
    may_break_glass: bool = False
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def basis_label(self) -> str:
        return self.basis

    @property
    def is_break_glass(self) -> bool:
        return self.basis_kind == Basis.BREAK_GLASS

    @property
    def is_self_claimed(self) -> bool:
        return self.basis_kind == Basis.SELF_CLAIM

    @property
    def objection_overridden(self) -> bool:
        return bool(self.overridden_objections)


def _deny(why: str) -> Decision:
    return Decision(allowed=False, why_not=why)


# Where a web request keeps what it has already read of its user's role profiles and roles. The middleware that
# carries the chosen role (`consent.middleware.SelectedRoleMiddleware`) puts an empty cache on each request's user;
# the user object, and with it the cache, lives no longer than that request. A user object without one (a worker,
# a shell, a test calling the rules directly) is asked of the database every time, so a change to a profile or a
# role is never hidden from the next decision.
REQUEST_CACHE_ATTRIBUTE = "_sharedcare_standing_cache"


def _request_cached(user: User, key: str, read):  # type: ignore[no-untyped-def]
    cache = getattr(user, REQUEST_CACHE_ATTRIBUTE, None)
    if cache is None:
        return read()
    if key not in cache:
        cache[key] = read()
    return cache[key]


def staff_profile_of(user: User) -> StaffProfile | None:
    """The role profile this user acts under now: the one chosen at login, or their only one.

    A user with several profiles who has chosen none acts under none, so nothing opens until they choose.
    """
    profiles = staff_profiles_of(user)
    selected = getattr(user, SELECTED_PROFILE_SESSION_KEY, None)
    if selected is not None:
        return next((profile for profile in profiles if profile.pk == selected), None)
    return profiles[0] if len(profiles) == 1 else None


# The roles table's columns, read with each role profile in the profiles' own statement (`_ROLE_ROW`).
_ROLE_FIELDS = tuple(field.attname for field in Role._meta.concrete_fields)
# Where a profile read by `staff_profiles_of` carries its role's row (None when the role is not in the table).
_ROLE_ROW_ATTRIBUTE = "_sharedcare_role_row"
_NO_ROW = object()


def _profiles_read(user_id: int) -> list[StaffProfile]:
    # The job role's row comes in the same statement, as one JSON object, since a job role is a code and not a
    # foreign key: one round trip for the profiles, their organisations and their roles.
    role_row = Role.objects.filter(code=OuterRef("job_role")).values(
        row=JSONObject(**{name: name for name in _ROLE_FIELDS})
    )[:1]
    return list(
        StaffProfile.objects.select_related("organisation")
        .filter(user_id=user_id)
        .annotate(**{_ROLE_ROW_ATTRIBUTE: Subquery(role_row)})
        .order_by("pk")
    )


def staff_profiles_of(user: User) -> list[StaffProfile]:
    """Every role profile this user holds, for the choice at login, each with its role; read once per web request."""
    if not getattr(user, "is_authenticated", False):
        return []
    return _request_cached(  # type: ignore[no-any-return]
        user, "profiles", lambda: _profiles_read(int(user.pk or 0))
    )


def _role_read(profile: StaffProfile) -> Role | None:
    row = getattr(profile, _ROLE_ROW_ATTRIBUTE, _NO_ROW)
    if row is _NO_ROW:
        # A profile that did not come from `staff_profiles_of`: its role is asked of the table.
        return Role.objects.filter(code=profile.job_role).first()
    if row is None:
        return None
    return Role.from_db(profile._state.db, list(_ROLE_FIELDS), [row[name] for name in _ROLE_FIELDS])  # type: ignore[index]


def role_of_profile(user: User, profile: StaffProfile) -> Role | None:
    """The roles table's row for the profile's job role: read with the profiles (`staff_profiles_of`), so it costs no
    statement of its own, and the same row for the whole of a web request."""
    return _request_cached(  # type: ignore[no-any-return]
        user, f"role:{profile.job_role}", lambda: _role_read(profile)
    )


@dataclass(frozen=True)
class _Standing:
    """What a user brings to direct care, once the checks every clinical access shares have passed."""

    user_id: int
    profile: StaffProfile
    role: Role
    sections: frozenset[Section]
    activities: frozenset[str]


def _clinical_standing(user: User, action: str, purpose: str) -> _Standing | str:
    """The checks `decide` and `visible_patients` share: the user's standing, or why they have none."""
    if action not in CLINICAL_ACTIONS:
        return "unknown action"
    if purpose != Purpose.DIRECT_CARE:
        return "only direct care is a purpose for reading a record"
    if not getattr(user, "is_active", False):
        return "user is not active"
    profile = staff_profile_of(user)
    if profile is None:
        return "user has no staff role selected"
    if not profile.organisation.is_active:
        return "user's organisation is not an active partner"
    role = role_of_profile(user, profile)
    if role is None:
        return "role is not known to sharedcare"
    sections = frozenset(Section(section) for section in role.sections)
    if not sections:
        return "role gives no access to records"
    activities = frozenset(role.activities)
    if Activity.PATIENT_TRACE not in activities:
        return "role may not trace patients"
    return _Standing(
        user_id=int(user.pk or 0), profile=profile, role=role, sections=sections, activities=activities
    )


def _current(now: datetime) -> Q:
    return Q(valid_from__lte=now) & (Q(valid_until__isnull=True) | Q(valid_until__gt=now))


def _holder_groups(standing: _Standing) -> QuerySet[CareTeam]:
    """The groups whose relationships reach this user: their organisation's, and their teams' within it."""
    return CareTeam.objects.filter(
        organisation_id=standing.profile.organisation_id, memberships__user_id=standing.user_id
    )


def _current_relationships(standing: _Standing, now: datetime) -> QuerySet[LegitimateRelationship]:
    teams = _holder_groups(standing).values("group_id")
    return LegitimateRelationship.objects.filter(
        _current(now),
        Q(group_id=standing.profile.organisation.group_id) | Q(group_id__in=teams),
        permission__codename=ACCESS_RECORD_PERMISSION,
        permission__content_type__app_label="records",
    )


def _current_grants(model: type[G], standing: _Standing, now: datetime) -> QuerySet[G]:
    # A grant counts only under the role profile it was made under, and only until it expires or is ended.
    return model.objects.filter(
        user_id=standing.user_id,
        staff_profile_id=standing.profile.pk,
        valid_from__lte=now,
        valid_until__gt=now,
        ended_at__isnull=True,
    )


@dataclass(frozen=True)
class _Grant:
    kind: str
    reference: str
    reason_code: str
    valid_until: datetime

    @property
    def overrides_objections(self) -> bool:
        return self.kind == Basis.BREAK_GLASS and self.reason_code == BreakGlassGrant.Reason.SAFEGUARDING


def _current_grants_for(standing: _Standing, patient: Patient, now: datetime) -> list[_Grant]:
    """The user's current self-claims and break-glass grants on this patient (self-claims first), in one query.

    Asked whether or not a relationship holds, so a refused search takes the same queries as an allowed one.
    """
    held = grants_held(
        user_id=standing.user_id, profile_id=standing.profile.pk, patient_id=patient.pk, now=now
    )
    return [
        _Grant(
            kind=Basis.BREAK_GLASS if grant.is_break_glass else Basis.SELF_CLAIM,
            reference=grant.reference,
            reason_code=grant.reason_code,
            valid_until=grant.valid_until,
        )
        for grant in held
    ]


# Patients' choices: upheld objections, and the national data opt-out where the deployment lets it hide direct care.

# How the opt-out is named among the objections that applied (an objection's reference starts "OB-").
NATIONAL_OPT_OUT = "national-opt-out"


@dataclass(frozen=True)
class _Choice:
    """One upheld objection (or the national data opt-out) as the rules read it: its decided scope."""

    reference: str
    whole_record: bool
    sections: frozenset[str]
    from_partners: frozenset[str]
    to_partners: frozenset[str]
    may_be_overridden: bool

    def refuses(self, ods: str) -> bool:
        """The whole record is withheld from this organisation's staff."""
        return self.whole_record or ods in self.to_partners

    def withholds(self, ods: str, clinical: frozenset[Section]) -> bool:
        """Something is withheld from this organisation's staff acting under a role opening these clinical
        sections (a role that opens none reads no partner's entries)."""
        return (
            self.refuses(ods)
            or bool(self.sections & clinical)
            or bool(clinical and self.from_partners - {ods})
        )


def _choices_in_force(patient: Patient) -> list[_Choice]:
    """The patient's objections in force (`Objection.ENFORCED`), and their national data opt-out when
    `NDOP_HIDES_DIRECT_CARE` is set, in one query asked on every clinical decision, whether or not there are any."""
    return [
        _Choice(
            reference=row.reference,
            whole_record=row.whole_record,
            sections=frozenset(row.sections),
            from_partners=frozenset(row.from_partners),
            to_partners=frozenset(row.to_partners),
            may_be_overridden=row.may_be_overridden,
        )
        for row in choices_in_force(
            patient_id=patient.pk,
            opt_out_reference=NATIONAL_OPT_OUT,
            opt_out_counts=settings.NDOP_HIDES_DIRECT_CARE,
        )
    ]


def _refusal_words(choices: Iterable[_Choice], ods: str) -> str:
    return "; ".join(
        "national data opt-out (the deployment hides direct care by it)"
        if choice.reference == NATIONAL_OPT_OUT
        else f"objection {choice.reference} upheld for the whole record"
        if choice.whole_record
        else f"objection {choice.reference} upheld against {ods}"
        for choice in choices
    )


def _choices_apply(
    decision: Decision, standing: _Standing, choices: list[_Choice], override: _Grant | None
) -> Decision:
    """What the patient's choices leave of an allowed decision.

    A current break-glass for safeguarding (`override`) sets aside, for its time, each objection whose decision
    allows it (`break_glass_may_override`) and no other; when that sets aside anything this user would otherwise
    be refused, the access rests on that grant and says so (`overridden_objections`). Of what remains, every
    objection counts (their scopes combine): one that refuses the user's organisation (whole record, or it is
    among the partners who must not see the record) refuses the record, for every role and even to the source's
    own staff, who keep their own system; sections are withheld where the role opens them (demographics and the
    GP practice never are: a patient who wants nothing shared has the whole record withheld); partners' entries
    are withheld from everyone but that partner's own staff, since the objection is to sharing them, not to the
    source's own record, and only from roles that read entries at all.
    """
    ods = standing.profile.organisation.ods_code
    clinical = decision.sections & CLINICAL_SECTIONS
    set_aside = [choice for choice in choices if override is not None and choice.may_be_overridden]
    kept = [choice for choice in choices if choice not in set_aside]
    overridden = tuple(choice.reference for choice in set_aside if choice.withholds(ods, clinical))
    if overridden and override is not None:
        decision = replace(_grant_allowed(standing, override), overridden_objections=overridden)
    refusing = [choice for choice in kept if choice.refuses(ods)]
    if refusing:
        return Decision(
            allowed=False,
            why_not=f"withheld by the patient's choice: {_refusal_words(refusing, ods)}"[:500],
            withholds_whole_record=True,
            objections_applied=tuple(choice.reference for choice in refusing),
        )
    sections: set[Section] = set()
    partners: set[str] = set()
    for choice in kept:
        sections |= {section for section in clinical if section in choice.sections}
        partners |= choice.from_partners - {ods} if clinical else set()
    return replace(
        decision,
        withheld_sections=frozenset(sections),
        withheld_partners=frozenset(partners),
        objections_applied=tuple(choice.reference for choice in kept if choice.withholds(ods, clinical)),
    )


def _allowed(
    standing: _Standing, *, basis: str, basis_kind: str, provenance: str, **grant: object
) -> Decision:
    ods = standing.profile.organisation.ods_code
    return Decision(
        allowed=True,
        basis=basis[:200],
        basis_kind=basis_kind,
        provenance=provenance,
        sections=standing.sections,
        withholds_sensitive=True,
        # The source organisation's own staff with a relationship see what it marked sensitive or confidential.
        sensitive_visible_from=frozenset({ods}),
        shows_restricted_demographics=Activity.ACCESS_SENSITIVE in standing.activities,
        **grant,  # type: ignore[arg-type]
    )


def _grant_allowed(standing: _Standing, grant: _Grant) -> Decision:
    ods = standing.profile.organisation.ods_code
    is_claim = grant.kind == Basis.SELF_CLAIM
    reason = (SelfClaimedRelationship.Reason if is_claim else BreakGlassGrant.Reason)(grant.reason_code).label
    described = "Self-claimed relationship" if is_claim else "Break-glass access"
    return _allowed(
        standing,
        basis=f"{grant.kind}:{ods} {grant.reference}",
        basis_kind=grant.kind,
        provenance=f"{described} {grant.reference}: {reason}",
        grant_reference=grant.reference,
        grant_expires_at=grant.valid_until,
    )


def _source_for_audit(relationship: HeldRelationship) -> str:
    """Where the relationship came from, by ids that outlive it, for the audit row: relationships are rewritten as
    care context changes, but feeds, runs and entries are kept."""
    found = [
        f"{name} {value}"
        for name, value in (
            ("feed", relationship.feed_code),
            ("run", relationship.source_run_id),
            ("entry", relationship.source_entry_id),
        )
        if value is not None
    ]
    return f" ({', '.join(found)})" if found else ""


def _whereabouts_shown(standing: _Standing, patient: Patient) -> bool:
    """A restricted patient's address, phone and practice are shown only to roles holding B1611."""
    return not patient.is_restricted or Activity.ACCESS_SENSITIVE in standing.activities


_BASIS_LABELS: dict[str, str] = dict(LegitimateRelationship.Basis.choices)


def _provenance_words(relationship: HeldRelationship, *, whereabouts_shown: bool) -> str:
    parts = [_BASIS_LABELS.get(relationship.basis, relationship.basis)]
    if relationship.holder is not None:
        parts.append(f"held by {relationship.holder}")
    if not whereabouts_shown:
        parts.append("where it came from is not shown: the record is restricted")
        return "; ".join(parts)
    if relationship.source_description:
        parts.append(relationship.source_description)
    if relationship.feed_code is not None:
        parts.append(
            f"from {relationship.feed_partner}'s {relationship.feed_name} ({relationship.feed_code})"
        )
    if relationship.source_run_id is not None:
        parts.append(f"ingest run {relationship.source_run_id}")
    return "; ".join(parts)


def relationship_provenance(relationship: LegitimateRelationship, *, whereabouts_shown: bool = True) -> str:
    """Where a relationship came from, in words: its basis, its holder, and the data that created it.

    For a restricted patient whose whereabouts the user may not see, only the basis and holder: the data that
    created a relationship can name the patient's GP practice (a registration, a GP's referral). The audit row
    still names the relationship, so a privacy officer can follow it.
    """
    team = getattr(relationship.group, "care_team", None) if relationship.group_id else None
    feed = relationship.source_feed
    held = HeldRelationship(
        pk=relationship.pk,
        basis=relationship.basis,
        source_description=relationship.source_description,
        source_run_id=relationship.source_run_id,
        source_entry_id=relationship.source_entry_id,
        holder=team.name if team is not None else None,
        feed_code=feed.code if feed is not None else None,
        feed_name=feed.name if feed is not None else None,
        feed_partner=feed.organisation.name if feed is not None else None,
    )
    return _provenance_words(held, whereabouts_shown=whereabouts_shown)


def decide(user: User, patient: Patient, action: str, purpose: str = Purpose.DIRECT_CARE) -> Decision:
    """Decide whether `user` may take `action` on `patient` for `purpose`, and what they may then see.

    Always holds: the answer is a denial unless every rule below passes; relationships and grants are judged
    against the current time on every call, so expiry and revocation take effect at once; a grant counts only
    under the role profile it was made under; superusers gain nothing from being superusers.

    The patient's choices come last (`_choices_apply`): only objections in `Objection.ENFORCED` count, and the
    national data opt-out only when the deployment sets `NDOP_HIDES_DIRECT_CARE`. They are read in one query on
    every decision that reaches them, whether or not there are any, so a patient's choices cannot be inferred
    from how long an answer takes. A user the record is refused to on that ground alone already holds a
    relationship or a grant, so the decision says so (`withholds_whole_record`) and the page tells them plainly
    that the patient has asked for their record not to be shared: a clinician who believes there is no record is
    a clinical-safety hazard. Anyone else is refused as they would be without the objection, which the refusal
    never hints at.
    """
    standing = _clinical_standing(user, action, purpose)
    if isinstance(standing, str):
        return _deny(standing)
    if patient.merged_into_id is not None:
        return _deny("record merged into another; open the surviving record")
    now = timezone.now()
    ods = standing.profile.organisation.ods_code
    relationships = relationships_held(
        user_id=standing.user_id,
        organisation_id=standing.profile.organisation_id,
        organisation_group_id=standing.profile.organisation.group_id,
        patient_id=patient.pk,
        now=now,
    )
    grants = _current_grants_for(standing, patient, now)
    choices = _choices_in_force(patient)
    override = next((grant for grant in grants if grant.overrides_objections), None)
    if relationships:
        relationship = min(relationships, key=lambda row: (_BASIS_STRENGTH.get(row.basis, 9), row.pk))
        allowed = _allowed(
            standing,
            basis=f"{relationship.basis}:{ods} relationship {relationship.pk}{_source_for_audit(relationship)}",
            basis_kind=relationship.basis,
            provenance=_provenance_words(
                relationship, whereabouts_shown=_whereabouts_shown(standing, patient)
            ),
            relationship_id=relationship.pk,
        )
        return _choices_apply(allowed, standing, choices, override)
    if grants:
        return _choices_apply(_grant_allowed(standing, grants[0]), standing, choices, override)
    return Decision(
        allowed=False,
        why_not="no legitimate relationship",
        may_self_claim=standing.role.may_self_claim,
        may_break_glass=standing.role.may_break_glass,
    )


def visible_patients(
    user: User,
    action: str = Action.SEARCH,
    purpose: str = Purpose.DIRECT_CARE,
    *,
    among: Iterable[int] | None = None,
) -> QuerySet[Patient]:
    """The patients `decide(user, patient, action, purpose)` would allow, as one queryset.

    Always holds: the two never disagree, because both stand on `_clinical_standing`, the same relationships and
    grants, and the same reading of the patient's choices: a patient whose objection in force refuses the user's
    organisation is left out, unless every such objection allows a break-glass to set it aside and the user holds
    a current one for safeguarding; with `NDOP_HIDES_DIRECT_CARE`, a patient who has opted out is left out.

    `among`, a list of patient ids, keeps only those patients, and every relationship, grant, objection and opt-out
    is read for them alone: PostgreSQL cannot look an `IN` under an `OR` up by index one patient at a time, so
    without it the rows of every patient the user's groups relate to are read, whatever the caller then keeps. It
    is a list, not a subquery: handed a subquery, the planner at a million patients joined it to a parallel scan of
    every patient (130 ms); a list of ids is read through the patients' key.
    """
    standing = _clinical_standing(user, action, purpose)
    if isinstance(standing, str):
        return Patient.objects.none()
    now = timezone.now()
    ods = standing.profile.organisation.ods_code
    related = _current_relationships(standing, now).values("content_object_id")
    claimed = _current_grants(SelfClaimedRelationship, standing, now).values("content_object_id")
    glass = _current_grants(BreakGlassGrant, standing, now).values("content_object_id")
    objections = Objection.objects.filter(status__in=Objection.ENFORCED, patient__isnull=False)
    opted_out = NationalOptOut.objects.values("patient_id")
    patients = Patient.objects.filter(merged_into__isnull=True)
    if among is not None:
        among = list(among)
        related = related.filter(content_object_id__in=among)
        claimed = claimed.filter(content_object_id__in=among)
        glass = glass.filter(content_object_id__in=among)
        objections = objections.filter(patient_id__in=among)
        opted_out = opted_out.filter(patient_id__in=among)
        patients = patients.filter(pk__in=among)
    safeguarding = glass.filter(reason_code=BreakGlassGrant.Reason.SAFEGUARDING)
    refusing = (
        objections.filter(Q(upheld_whole_record=True) | Q(upheld_to_partners__contains=[ods]))
        .exclude(break_glass_may_override=True, patient__in=safeguarding)
        .values("patient_id")
    )
    visible = patients.filter(Q(pk__in=related) | Q(pk__in=claimed) | Q(pk__in=glass)).exclude(
        pk__in=refusing
    )
    if settings.NDOP_HIDES_DIRECT_CARE:
        visible = visible.exclude(pk__in=opted_out)
    return visible


@dataclass(frozen=True)
class GrantStanding:
    """May this user give themselves access to this patient, and for how long at most; or why not."""

    allowed: bool
    why_not: str = ""
    profile: StaffProfile | None = None
    max_hours: int = 0


def _grant_standing(user: User, patient: Patient, *, break_glass: bool) -> GrantStanding:
    standing = _clinical_standing(user, Action.VIEW_RECORD, Purpose.DIRECT_CARE)
    if isinstance(standing, str):
        return GrantStanding(allowed=False, why_not=standing)
    if patient.merged_into_id is not None:
        return GrantStanding(allowed=False, why_not="record merged into another")
    if break_glass and not standing.role.may_break_glass:
        return GrantStanding(allowed=False, why_not="role may not break the glass")
    if not break_glass and not standing.role.may_self_claim:
        return GrantStanding(allowed=False, why_not="role may not declare relationships")
    hours = standing.role.break_glass_max_hours if break_glass else standing.role.self_claim_max_hours
    return GrantStanding(allowed=True, profile=standing.profile, max_hours=hours)


def self_claim_decide(user: User, patient: Patient) -> GrantStanding:
    """Whether `user` may declare a relationship with `patient` under their selected role, and for how long."""
    return _grant_standing(user, patient, break_glass=False)


def break_glass_decide(user: User, patient: Patient) -> GrantStanding:
    """Whether `user` may break the glass on `patient` under their selected role, and for how long."""
    return _grant_standing(user, patient, break_glass=True)


def may_review_alerts(user: User) -> bool:
    """Privacy officers (roles with an alert activity) review self-claims and break-glass; no one else does."""
    if not getattr(user, "is_active", False):
        return False
    profile = staff_profile_of(user)
    if profile is None or not profile.organisation.is_active:
        return False
    role = role_of_profile(user, profile)
    if role is None:
        return False
    return bool({Activity.EMERGENCY_ACCESS_ALERTS, Activity.SELF_CLAIMED_ALERTS} & set(role.activities))


def may_read_audit(user: User) -> bool:
    """Privacy officers read the access trail about a patient (the patient access report): the users
    `may_review_alerts` allows, because an alert's review already is reading the trail, and the two must never
    disagree about who the privacy officers are. A superuser gains nothing by being one.
    """
    return may_review_alerts(user)


# Patients' rights: who works objections and subject access requests.

# The permission that makes a user one of the information-governance team who work patients' objections and subject
# access requests. Asked of the permission tables, never `has_perm`, so a superuser holds it only if granted it.
PATIENTS_RIGHTS_PERMISSION = "manage_objections"


def may_manage_patients_rights(user: User) -> bool:
    """The IG team (holders of `consent.manage_objections`, given directly or through a group) work the cases.

    Working a case opens no record: matching a case to a patient is its own audited action, and the IG team sees
    only the demographics the match needs.
    """
    if not getattr(user, "is_active", False) or not getattr(user, "is_authenticated", False):
        return False
    return (
        Permission.objects.filter(codename=PATIENTS_RIGHTS_PERMISSION, content_type__app_label="consent")
        .filter(Q(user=user) | Q(group__user=user))
        .exists()
    )


def may_enter_objection_for(user: User, patient: Patient) -> Decision:
    """A patient's own GP practice may record an objection the patient made to it (by phone, letter or in
    person): allowed for a user whose acting role may view the record through the registered-practice relationship.
    """
    decision = decide(user, patient, Action.VIEW_RECORD)
    if not decision.allowed:
        return decision
    if decision.basis_kind != LegitimateRelationship.Basis.REGISTERED_PRACTICE:
        return _deny("only the patient's own GP practice records an objection from the record")
    return decision


def _holds_feed_support_permission(user: User) -> bool:
    # Asked of the permission tables, not `has_perm`: a superuser holds it only if it was granted to them.
    return (
        Permission.objects.filter(codename=FEED_SUPPORT_PERMISSION, content_type__app_label="consent")
        .filter(Q(user=user) | Q(group__user=user))
        .exists()
    )


def _assignments(user: User) -> QuerySet[FeedSupportAssignment]:
    return FeedSupportAssignment.objects.filter(user_id=user.pk or 0)


def _feed_support_standing(user: User, action: str, purpose: str) -> str | None:
    """The checks `feed_support_decide` and `supported_organisations` share: None, or why the user may not."""
    if action not in FEED_SUPPORT_ACTIONS:
        return "unknown action"
    if purpose != Purpose.FEED_SUPPORT:
        return "only feed support is a purpose for reading what a partner sent"
    if not getattr(user, "is_active", False):
        return "user is not active"
    if not getattr(user, "is_staff", False):
        return "user is not back-office staff"
    if not _holds_feed_support_permission(user):
        return "user does not hold the feed-support permission"
    return None


def feed_support_decide(
    user: User, organisation: Organisation | None, action: str, purpose: str = Purpose.FEED_SUPPORT
) -> Decision:
    """Decide whether back-office `user` may read what `organisation`'s feeds sent (payloads, error texts).

    Always holds: the answer is a denial unless every rule below passes; being a superuser grants nothing; the
    permission alone opens nothing, only together with an assignment to support this very partner.
    """
    why_not = _feed_support_standing(user, action, purpose)
    if why_not is not None:
        return _deny(why_not)
    if organisation is None:
        return _deny("not from a partner's feed")
    if not _assignments(user).filter(organisation=organisation).exists():
        return _deny("user does not support this partner")
    return Decision(allowed=True, basis=f"feed-support:{organisation.ods_code}")


def supported_organisations(
    user: User, action: str = Action.VIEW_DOCUMENT, purpose: str = Purpose.FEED_SUPPORT
) -> QuerySet[Organisation]:
    """The partners whose feed data `feed_support_decide(user, partner, action, purpose)` would open."""
    if _feed_support_standing(user, action, purpose) is not None:
        return Organisation.objects.none()
    return Organisation.objects.filter(pk__in=_assignments(user).values("organisation"))
