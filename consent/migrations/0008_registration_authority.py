"""The registration authority: the permission to change other users' access and the group that holds it.

Who is in the group is decided by a deployment step (`consent.separation.registration_authority_add`) or by
another member; the group starts empty, so until then nobody changes anyone's access in the back office.
"""

from django.db import migrations

PERMISSION = "administer_access"
PERMISSION_NAME = (
    "Can administer access (role profiles, care teams, feed support, passwords, staff flags) of other users"
)
GROUP = "Registration authority"


def registration_authority_create(apps, schema_editor):
    content_type_model = apps.get_model("contenttypes", "ContentType")
    permission_model = apps.get_model("auth", "Permission")
    group_model = apps.get_model("auth", "Group")
    content_type, _ = content_type_model.objects.get_or_create(app_label="consent", model="staffprofile")
    permission, _ = permission_model.objects.get_or_create(
        codename=PERMISSION, content_type=content_type, defaults={"name": PERMISSION_NAME}
    )
    group, _ = group_model.objects.get_or_create(name=GROUP)
    group.permissions.add(permission)


def registration_authority_remove(apps, schema_editor):
    apps.get_model("auth", "Permission").objects.filter(
        codename=PERMISSION, content_type__app_label="consent"
    ).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("consent", "0007_staff_identity"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [migrations.RunPython(registration_authority_create, registration_authority_remove)]
