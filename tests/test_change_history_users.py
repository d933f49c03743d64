"""django-auditlog records every change to who may sign in and with what standing, with the actor: a user's flags,
groups and direct permissions, a password set for them (shown only as set), and a group's permissions."""

from auditlog.context import set_actor
from auditlog.models import LogEntry
from django.contrib.auth.models import Group, Permission
from django.urls import reverse

from audit.models import AccessEvent


def history(obj) -> list[LogEntry]:
    return list(LogEntry.objects.get_for_object(obj).order_by("timestamp", "pk"))


def test_making_a_user_a_superuser_is_recorded_with_who_did_it(cast):
    # What the back office's pages do: django-auditlog's middleware names the signed-in user as the actor.
    with set_actor(cast.admin_gus):
        cast.gp_ada.is_superuser = True
        cast.gp_ada.save()

    entry = history(cast.gp_ada)[-1]
    assert entry.actor == cast.admin_gus
    assert entry.changes_dict["is_superuser"] == ["False", "True"]


def test_a_users_flags_changed_anywhere_are_recorded(cast):
    cast.gp_ada.is_staff = True
    cast.gp_ada.save()

    entry = history(cast.gp_ada)[-1]
    assert entry.changes_dict["is_staff"] == ["False", "True"]


def test_a_password_set_for_a_user_is_recorded_as_set_and_never_shows_the_hash(cast):
    cast.gp_ada.set_password("another-Fenland-heron-77")
    cast.gp_ada.save()

    entry = history(cast.gp_ada)[-1]
    assert set(entry.changes_dict) == {"password"}
    assert entry.changes_dict["password"] == ["(set)", "(set)"]
    assert cast.gp_ada.password not in entry.changes


def test_signing_in_is_not_a_change(client, cast):
    before = len(history(cast.gp_ada))

    client.post(reverse("login"), {"username": "gp.ada", "password": "correct horse battery staple"})
    client.force_login(cast.gp_ada)

    assert len(history(cast.gp_ada)) == before


def test_groups_and_permissions_given_to_a_user_or_a_group_are_recorded(cast):
    group = Group.objects.create(name="Information governance")
    permission = Permission.objects.get(codename="manage_objections", content_type__app_label="consent")

    group.permissions.add(permission)
    cast.gp_ada.groups.add(group)
    cast.gp_ada.user_permissions.add(permission)

    assert any("permissions" in entry.changes_dict for entry in history(group))
    user_changes = [entry.changes_dict for entry in history(cast.gp_ada)]
    assert any("groups" in changes for changes in user_changes)
    assert any("user_permissions" in changes for changes in user_changes)


# The privacy officer's page.


def test_the_privacy_officer_reads_who_changed_whom_and_the_reading_is_audited(client, cast):
    with set_actor(cast.admin_gus):
        cast.gp_ada.is_superuser = True
        cast.gp_ada.save()
    client.force_login(cast.privacy_fay)

    page = client.get(reverse("records:change-history")).content.decode()
    only_gus = client.get(reverse("records:change-history"), {"actor": "admin.gus"}).content.decode()
    only_ben = client.get(reverse("records:change-history"), {"actor": "gp.ben"}).content.decode()

    for text in (page, only_gus):
        assert "User: gp.ada" in text and "admin.gus" in text and "superuser status" in text.lower()
    assert "User: gp.ada" not in only_ben and "No changes by gp.ben." in only_ben
    reads = AccessEvent.objects.filter(action=AccessEvent.Action.READ_AUDIT, username="privacy.fay")
    assert reads.count() == 3
    assert set(reads.values_list("purpose", "outcome", "patient_id").distinct()) == {
        (AccessEvent.Purpose.AUDIT, AccessEvent.Outcome.ALLOWED, None)
    }


def test_no_one_but_a_privacy_officer_reads_the_change_history_and_each_try_is_audited(client, cast):
    for user in (cast.gp_ada, cast.admin_gus, cast.reception_dan):
        client.force_login(user)

        response = client.get(reverse("records:change-history"))

        assert response.status_code == 404
        assert "User: " not in response.content.decode()
    denied = AccessEvent.objects.filter(
        action=AccessEvent.Action.READ_AUDIT, outcome=AccessEvent.Outcome.DENIED
    )
    assert sorted(denied.values_list("username", flat=True)) == ["admin.gus", "gp.ada", "reception.dan"]


def test_the_change_history_shows_no_password_hash(client, cast):
    cast.gp_ben.set_password("another-Fenland-heron-77")
    cast.gp_ben.save()
    client.force_login(cast.privacy_fay)

    page = client.get(reverse("records:change-history")).content.decode()

    assert "User: gp.ben" in page and "(set)" in page
    assert cast.gp_ben.password not in page and "argon2" not in page and "pbkdf2" not in page
