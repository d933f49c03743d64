"""Back office: users with their organisation and role, and the partners whose feeds they support.

Feed support needs both the "Can support partner feeds" permission (in the user's permissions or a group's) and one
assignment per partner here; see `consent.policy.feed_support_decide`.
"""

from typing import Any

from django.contrib import admin
from django.contrib.auth.admin import UserAdmin
from django.contrib.auth.models import User
from django.http import HttpRequest

from consent.models import FeedSupportAssignment, StaffProfile
from consent.services import staff_profile_set


class StaffProfileInline(admin.StackedInline[StaffProfile, User]):
    model = StaffProfile
    can_delete = False
    fk_name = "user"
    autocomplete_fields = ("organisation",)
    verbose_name = "Organisation and role"


class FeedSupportAssignmentInline(admin.TabularInline[FeedSupportAssignment, User]):
    model = FeedSupportAssignment
    fk_name = "user"
    extra = 0
    autocomplete_fields = ("organisation",)
    readonly_fields = ("assigned_at",)
    verbose_name = "Partner whose feeds this user supports"
    verbose_name_plural = "Partners whose feeds this user supports"


class StaffUserAdmin(UserAdmin[User]):
    inlines = (StaffProfileInline, FeedSupportAssignmentInline)
    list_display = ("username", "first_name", "last_name", "role", "organisation", "is_active", "is_staff")
    list_filter = ("is_active", "is_staff", "staff_profile__job_role", "staff_profile__organisation__kind")
    list_select_related = ("staff_profile__organisation",)

    @admin.display(description="Role", ordering="staff_profile__job_role")
    def role(self, user: User) -> str:
        profile = getattr(user, "staff_profile", None)
        return profile.get_job_role_display() if profile else "—"

    @admin.display(description="Organisation", ordering="staff_profile__organisation__name")
    def organisation(self, user: User) -> str:
        profile = getattr(user, "staff_profile", None)
        return str(profile.organisation) if profile else "—"

    def save_related(self, request: HttpRequest, form: Any, formsets: Any, change: bool) -> None:
        super().save_related(request, form, formsets, change)
        # Membership of the organisation's group is what legitimate relationships are granted to.
        profile = getattr(form.instance, "staff_profile", None)
        if profile is not None:
            staff_profile_set(
                user_id=form.instance.pk,
                organisation=profile.organisation,
                job_role=profile.job_role,
                sds_user_id=profile.sds_user_id,
            )


admin.site.unregister(User)
admin.site.register(User, StaffUserAdmin)
