"""Back office: users with their organisation and role."""

from typing import Any

from django.contrib import admin
from django.contrib.auth.admin import UserAdmin
from django.contrib.auth.models import User
from django.http import HttpRequest

from consent.models import StaffProfile
from consent.services import staff_profile_set


class StaffProfileInline(admin.StackedInline[StaffProfile, User]):
    model = StaffProfile
    can_delete = False
    fk_name = "user"
    autocomplete_fields = ("organisation",)
    verbose_name = "Organisation and role"


class StaffUserAdmin(UserAdmin[User]):
    inlines = (StaffProfileInline,)
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
