"""The role profiles and roles a web request has read are kept for that request only.

The door, the page's frame and the audit row each need the user's role profile; a request reads it once. A change
in the back office (a profile removed, a role narrowed) holds from the user's very next request, and the rules
asked outside a request (a worker, a shell) read the database every time.
"""

from django.urls import reverse

from consent.models import Role, StaffProfile
from consent.policy import Action, decide
from records.sections import Section


def record_url(patient) -> str:
    return reverse("records:patient-detail", kwargs={"public_id": patient.public_id})


def test_a_role_profile_removed_closes_the_record_on_the_next_request(client, cast):
    client.force_login(cast.gp_ada)
    assert client.get(record_url(cast.patient_a)).status_code == 200

    StaffProfile.objects.filter(user=cast.gp_ada).delete()

    # Removing the profile the session signed in with ends the session itself (sharedcare/sessions.py).
    response = client.get(record_url(cast.patient_a))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))
    assert "Type 2 diabetes mellitus" not in response.content.decode()


def test_a_role_narrowed_in_the_back_office_shows_less_on_the_next_request(client, cast):
    client.force_login(cast.gp_ada)
    assert "Type 2 diabetes mellitus" in client.get(record_url(cast.patient_a)).content.decode()
    role = Role.objects.get(code=cast.gp_ada.staff_profiles.get().job_role)

    role.sections = [Section.DEMOGRAPHICS]
    role.save()

    assert "Type 2 diabetes mellitus" not in client.get(record_url(cast.patient_a)).content.decode()


def test_the_rules_asked_outside_a_request_read_each_change_at_once(cast):
    user = cast.gp_ada  # the same object throughout, as a worker would hold it
    assert decide(user, cast.patient_a, Action.VIEW_RECORD).allowed
    role = Role.objects.get(code=user.staff_profiles.get().job_role)
    role.sections = []
    role.save()

    assert not decide(user, cast.patient_a, Action.VIEW_RECORD).allowed
