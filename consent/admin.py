"""Back office: users with their role profiles and identities, the roles table, care teams, and feed-support
assignments.

Feed support needs both the "Can support partner feeds" permission (in the user's permissions or a group's) and one
assignment per partner here; see `consent.policy.feed_support_decide`.
"""

from typing import Any

from auditlog.registry import auditlog
from django import forms
from django.contrib import admin
from django.contrib.auth.admin import UserAdmin
from django.contrib.auth.models import User
from django.db.models import QuerySet
from django.http import HttpRequest

from consent.models import (
    CareTeam,
    CareTeamMembership,
    FeedSupportAssignment,
    Role,
    StaffIdentity,
    StaffProfile,
)
from consent.roles import Activity
from consent.services import care_team_create, staff_groups_sync
from records.sections import SECTION_ORDER


class StaffProfileInline(admin.TabularInline[StaffProfile, User]):
    model = StaffProfile
    extra = 0
    fk_name = "user"
    autocomplete_fields = ("organisation",)
    verbose_name = "Role profile"
    verbose_name_plural = "Role profiles (organisation and role; the user chooses one at login)"


class FeedSupportAssignmentInline(admin.TabularInline[FeedSupportAssignment, User]):
    model = FeedSupportAssignment
    fk_name = "user"
    extra = 0
    autocomplete_fields = ("organisation",)
    readonly_fields = ("assigned_at",)
    verbose_name = "Partner whose feeds this user supports"
    verbose_name_plural = "Partners whose feeds this user supports"


def identity_mask(value: str) -> str:
    """What the change history shows of a staff identity's fields: only that one was recorded, never any part."""
    # A field not yet recorded reaches here as the text "None".
    return "(recorded)" if value and value != "None" else ""


# Registered here, beside the only page that edits it. Every field is masked: the history says who changed a
# user's identity and when, not their address or NHS number.
_IDENTITY_FIELDS = ["nhs_number", "family_name", "birth_date", "postcode", "address_line"]
auditlog.register(StaffIdentity, mask_fields=_IDENTITY_FIELDS, mask_callable="consent.admin.identity_mask")


class StaffIdentityInline(admin.StackedInline[StaffIdentity, User]):
    model = StaffIdentity
    fk_name = "user"
    extra = 0
    max_num = 1
    fields = ("family_name", "birth_date", "postcode", "address_line", "nhs_number")
    verbose_name = "Identity (as HR holds it)"
    verbose_name_plural = (
        "Identity (as HR holds it; used only to alert the privacy officer when the user opens their own record "
        "or their household's)"
    )


class StaffUserAdmin(UserAdmin[User]):
    inlines = (StaffProfileInline, FeedSupportAssignmentInline, StaffIdentityInline)
    list_display = ("username", "first_name", "last_name", "roles", "is_active", "is_staff")
    list_filter = ("is_active", "is_staff", "staff_profiles__job_role", "staff_profiles__organisation__kind")

    def get_queryset(self, request: HttpRequest) -> QuerySet[User]:
        return super().get_queryset(request).prefetch_related("staff_profiles__organisation")

    @admin.display(description="Role profiles")
    def roles(self, user: User) -> str:
        profiles = list(user.staff_profiles.all())
        return "; ".join(str(profile) for profile in profiles) or "—"

    def save_related(self, request: HttpRequest, form: Any, formsets: Any, change: bool) -> None:
        super().save_related(request, form, formsets, change)
        # Membership of each organisation's group is what legitimate relationships are granted to.
        staff_groups_sync(user_id=form.instance.pk)


class RoleForm(forms.ModelForm[Role]):
    """Sections and activities as ticked boxes in page order, not as comma-separated codes."""

    sections = forms.MultipleChoiceField(
        choices=[(section.value, section.label) for section in SECTION_ORDER],
        widget=forms.CheckboxSelectMultiple,
        required=False,
        help_text="The record sections this role opens. None at all: the role opens no record.",
    )
    activities = forms.MultipleChoiceField(
        choices=Activity.choices,
        widget=forms.CheckboxSelectMultiple,
        required=False,
        help_text="National RBAC activities. Patient trace (B0264) is needed to open any record; B1611 shows a "
        "restricted patient's address, phone and practice.",
    )

    class Meta:
        model = Role
        fields = (
            "code",
            "name",
            "sections",
            "activities",
            "may_self_claim",
            "self_claim_max_hours",
            "may_break_glass",
            "break_glass_max_hours",
        )


@admin.register(Role)
class RoleAdmin(admin.ModelAdmin[Role]):
    form = RoleForm
    list_display = ("code", "name", "section_count", "activity_codes", "may_self_claim", "may_break_glass")
    fields = (
        "code",
        "name",
        "sections",
        "activities",
        ("may_self_claim", "self_claim_max_hours"),
        ("may_break_glass", "break_glass_max_hours"),
    )

    @admin.display(description="Sections")
    def section_count(self, role: Role) -> int:
        return len(role.sections)

    @admin.display(description="Activities")
    def activity_codes(self, role: Role) -> str:
        return ", ".join(sorted(role.activities)) or "—"

    def get_readonly_fields(self, request: HttpRequest, obj: Role | None = None) -> tuple[str, ...]:
        # Role profiles name a role by its code: renaming the code would orphan them.
        return ("code",) if obj is not None else ()

    def has_delete_permission(self, request: HttpRequest, obj: Role | None = None) -> bool:
        # A role in use must not vanish; take its sections and activities away instead.
        return False


class CareTeamMembershipInline(admin.TabularInline[CareTeamMembership, CareTeam]):
    model = CareTeamMembership
    extra = 0
    autocomplete_fields = ("user",)
    readonly_fields = ("added_at",)
    verbose_name = "Member"


@admin.register(CareTeam)
class CareTeamAdmin(admin.ModelAdmin[CareTeam]):
    list_display = ("name", "code", "organisation")
    list_filter = ("organisation__kind",)
    search_fields = ("name", "code", "organisation__name", "organisation__ods_code")
    autocomplete_fields = ("organisation",)
    fields = ("organisation", "name", "code")
    inlines = (CareTeamMembershipInline,)

    def get_readonly_fields(self, request: HttpRequest, obj: CareTeam | None = None) -> tuple[str, ...]:
        # A team's relationships are held by its group within its organisation: moving it would move them.
        return ("organisation", "code") if obj is not None else ()

    def save_model(self, request: HttpRequest, obj: CareTeam, form: Any, change: bool) -> None:
        if change:
            super().save_model(request, obj, form, change)
            return
        created = care_team_create(organisation=obj.organisation, name=obj.name, code=obj.code)
        obj.pk, obj.group_id = created.pk, created.group_id
        obj._state.adding = False


admin.site.unregister(User)
admin.site.register(User, StaffUserAdmin)

from consent import sensitive_admin  # noqa: E402,F401
