"""Back office: users with their role profiles and identities, the roles table, care teams, and feed-support
assignments.

Feed support needs both the "Can support partner feeds" permission (in the user's permissions or a group's) and one
assignment per partner here; see `consent.policy.feed_support_decide`.

Whatever changes a user's access (role profiles, care teams, feed support, identity, flags, groups, permissions,
password) is changed only by the registration authority, never by the user affected (`consent.separation`); these
pages show it read-only to anyone else and refuse, record and alert a POST that tries anyway
(`consent.separation_admin`).
"""

from typing import Any

from auditlog.registry import auditlog
from django import forms
from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.contrib.auth.admin import GroupAdmin, UserAdmin
from django.contrib.auth.models import Group, User
from django.db import transaction
from django.db.models import Model, QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import redirect
from django.urls import reverse

from consent.mfa_admin import mfa_reset_action
from consent.models import (
    CareTeam,
    CareTeamMembership,
    FeedSupportAssignment,
    Role,
    StaffIdentity,
    StaffProfile,
)
from consent.roles import Activity
from consent.separation import (
    NOT_YOUR_OWN,
    access_change_alert,
    access_change_refusal,
    access_change_refuse,
)
from consent.separation_admin import REFUSED_MESSAGE, AccessAdministeredAdmin, AccessInline
from consent.services import care_team_create, staff_groups_sync
from records.sections import SECTION_ORDER


class StaffProfileInline(AccessInline[StaffProfile, User], admin.TabularInline[StaffProfile, User]):
    model = StaffProfile
    access_row = "role profile"
    extra = 0
    fk_name = "user"
    autocomplete_fields = ("organisation",)
    verbose_name = "Role profile"
    verbose_name_plural = "Role profiles (organisation and role; the user chooses one at login)"


class FeedSupportAssignmentInline(
    AccessInline[FeedSupportAssignment, User], admin.TabularInline[FeedSupportAssignment, User]
):
    model = FeedSupportAssignment
    access_row = "feed support assignment"
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


class StaffIdentityInline(AccessInline[StaffIdentity, User], admin.StackedInline[StaffIdentity, User]):
    model = StaffIdentity
    access_row = "identity record"
    fk_name = "user"
    extra = 0
    max_num = 1
    fields = ("family_name", "birth_date", "postcode", "address_line", "nhs_number")
    verbose_name = "Identity (as HR holds it)"
    verbose_name_plural = (
        "Identity (as HR holds it; used only to alert the privacy officer when the user opens their own record "
        "or their household's)"
    )


# The user page's fields that are access, with what changing them does.
USER_ACCESS_FIELDS = {
    "is_active": "change whether the user may sign in",
    "is_staff": "make the user back-office staff or not",
    "is_superuser": "make the user a superuser or not",
    "groups": "change the user's groups",
    "user_permissions": "change the user's permissions",
    "password": "set the user's password",
}


class StaffUserAdmin(AccessAdministeredAdmin[User], UserAdmin[User]):
    access_fields = USER_ACCESS_FIELDS
    inlines = (StaffProfileInline, FeedSupportAssignmentInline, StaffIdentityInline)
    list_display = ("username", "first_name", "last_name", "roles", "is_active", "is_staff")
    list_filter = ("is_active", "is_staff", "staff_profiles__job_role", "staff_profiles__organisation__kind")
    actions = (mfa_reset_action,)

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

    def affected_user_ids(self, obj: User | None) -> list[int]:
        return [obj.pk] if obj is not None else []

    def access_subject_label(self, obj: User | None, request: HttpRequest) -> str:
        if obj is not None:
            return obj.get_username()
        return f"a new user {request.POST.get('username', '')[:150]}".strip()

    def access_changes(
        self, form: forms.ModelForm[User], formsets: Any, change: bool
    ) -> dict[Model, list[str]]:
        user = form.instance
        changes = [] if change else ["user created, with a password or none"]
        for field in USER_ACCESS_FIELDS:
            if field not in form.changed_data or field == "password":
                continue
            value = form.cleaned_data[field]
            shown = (
                ", ".join(sorted(str(item) for item in value))
                if field in ("groups", "user_permissions")
                else value
            )
            changes.append(f"{field} now {shown or 'none'}")
        changes += [description for _, description in self.access_row_changes(formsets)]
        return {user: changes}

    def has_add_permission(self, request: HttpRequest) -> bool:
        # Adding a user sets their password.
        return super().has_add_permission(request) and not self.access_refusal(request, None)

    def has_delete_permission(self, request: HttpRequest, obj: User | None = None) -> bool:
        return super().has_delete_permission(request, obj) and not self.access_refusal(request, obj)

    def get_actions(self, request: HttpRequest) -> dict[str, Any]:
        actions = super().get_actions(request)
        # A bulk delete would take the user's own account with the others; a user is removed from their own page.
        actions.pop("delete_selected", None)
        return actions

    def get_fieldsets(self, request: HttpRequest, obj: User | None = None) -> Any:
        fieldsets = super().get_fieldsets(request, obj)
        if obj is None or not self.access_refusal(request, obj):
            return fieldsets
        # The password line links to the page that sets it; whoever may not set it sees only whether it is set.
        return [
            (
                name,
                {
                    **options,
                    "fields": tuple("password_state" if f == "password" else f for f in options["fields"]),
                },
            )
            for name, options in fieldsets
        ]

    def get_readonly_fields(self, request: HttpRequest, obj: User | None = None) -> Any:
        # When the user last signed in and joined are the system's record, never typed by hand.
        fields = (*super().get_readonly_fields(request, obj), "last_login", "date_joined")
        return (
            (*fields, "password_state") if obj is not None and self.access_refusal(request, obj) else fields
        )

    @admin.display(description="Password")
    def password_state(self, user: User) -> str:
        state = "Set" if user.has_usable_password() else "Not set (no sign-in by password)"
        return (
            f"{state}. Only the registration authority sets another user's password; your own is changed on "
            "the Change password page, with your old password."
        )

    def user_change_password(self, request: HttpRequest, id: str, form_url: str = "") -> HttpResponse:
        subject = self.get_object(request, unquote(id))
        if subject is None:
            response: HttpResponse = super().user_change_password(request, id, form_url)
            return response
        why = access_change_refusal(request.user, [subject.pk])
        if why:
            if request.method == "POST":
                access_change_refuse(
                    actor=request.user,
                    subject_type=User,
                    subject=subject,
                    subject_label=subject.get_username(),
                    attempted="set the user's password",
                    why=why,
                )
                messages.error(request, REFUSED_MESSAGE.format(why=why))
            else:
                messages.error(request, f"{why[0].upper()}{why[1:]}.")
            if why == NOT_YOUR_OWN:
                return redirect("password_change")
            return HttpResponseRedirect(reverse("admin:auth_user_change", args=[subject.pk]))
        with transaction.atomic():
            before = subject.password
            response = super().user_change_password(request, id, form_url)
            subject.refresh_from_db(fields=["password"])
            if subject.password != before:
                done = "password set" if subject.has_usable_password() else "sign-in by password turned off"
                access_change_alert(actor=request.user, subject=subject, changes=[done])
        return response


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


class CareTeamMembershipInline(
    AccessInline[CareTeamMembership, CareTeam], admin.TabularInline[CareTeamMembership, CareTeam]
):
    model = CareTeamMembership
    access_row = "member"
    extra = 0
    autocomplete_fields = ("user",)
    readonly_fields = ("added_at",)
    verbose_name = "Member"


@admin.register(CareTeam)
class CareTeamAdmin(AccessAdministeredAdmin[CareTeam]):
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

    def affected_user_ids(self, obj: CareTeam | None) -> list[int]:
        # A member may not change their own team's members: the team's relationships reach them.
        return list(obj.memberships.values_list("user_id", flat=True)) if obj is not None else []

    def has_delete_permission(self, request: HttpRequest, obj: CareTeam | None = None) -> bool:
        # Removing a team removes its members' access.
        return super().has_delete_permission(request, obj) and not self.access_refusal(request, obj)

    def posted_self_grant(self, request: HttpRequest, obj: CareTeam | None) -> str:
        actor = str(request.user.pk)
        for key, value in request.POST.items():
            # The blank row the page keeps for "add another" is named __prefix__ and is never saved.
            row = key.startswith("memberships-") and key.endswith("-user") and "__prefix__" not in key
            if row and value == actor:
                return "add themselves to the care team"
        return ""

    def access_changes(
        self, form: forms.ModelForm[CareTeam], formsets: Any, change: bool
    ) -> dict[Model, list[str]]:
        by_user: dict[Model, list[str]] = {}
        for membership, description in self.access_row_changes(formsets):
            if isinstance(membership, CareTeamMembership):
                by_user.setdefault(membership.user, []).append(description)
        return by_user


class AccessGroupAdmin(AccessAdministeredAdmin[Group], GroupAdmin):
    """Groups carry permissions to their members (the registration authority's own among them): changed only by
    the registration authority, and never a group one belongs to."""

    access_fields = {"name": "rename the group", "permissions": "change the group's permissions"}

    def affected_user_ids(self, obj: Group | None) -> list[int]:
        return list(obj.user_set.values_list("pk", flat=True)) if obj is not None else []

    def has_add_permission(self, request: HttpRequest) -> bool:
        return super().has_add_permission(request) and not self.access_refusal(request, None)

    def has_change_permission(self, request: HttpRequest, obj: Group | None = None) -> bool:
        return super().has_change_permission(request, obj) and not self.access_refusal(request, obj)

    def has_delete_permission(self, request: HttpRequest, obj: Group | None = None) -> bool:
        return super().has_delete_permission(request, obj) and not self.access_refusal(request, obj)

    def access_changes(
        self, form: forms.ModelForm[Group], formsets: Any, change: bool
    ) -> dict[Model, list[str]]:
        group = form.instance
        if "permissions" not in form.changed_data and change:
            return {}
        permissions = ", ".join(sorted(str(permission) for permission in form.cleaned_data["permissions"]))
        return {group: [f"the group {group.name}'s permissions now {permissions or 'none'}"]}


admin.site.unregister(User)
admin.site.register(User, StaffUserAdmin)
admin.site.unregister(Group)
admin.site.register(Group, AccessGroupAdmin)

from consent import sensitive_admin  # noqa: E402,F401
