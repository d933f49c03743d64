"""Who may not use the portal views: strangers, the wrong practice, back office and privacy staff."""

import re
import uuid

import pytest
from django.urls import reverse

from audit.models import AccessEvent
from consent.models import Role
from consent.roles import JobRole
from records.models import Patient, RecordEntry
from records.portal.forms import NOT_FOUND_MESSAGE

PATIENT_A_FIELDS = (
    "Alice",
    "ASHBY",
    "Ashby",
    "9990000018",
    "999 000 0018",
    "999-000-0018",
    "Mill Road",
    "CB1 2AB",
    "01223 000001",
    "14 Mar 1950",
)
CLINICAL_TEXT = (
    "Type 2 diabetes",
    "Metformin",
    "Emergency department attendance",
    "Care Act needs assessment",
)


# The search box keeps what was typed after a miss: the user's own input, not something the record disclosed.
_TYPED_NUMBER = re.compile(r'(<input[^>]*name="nhs_number"[^>]*value=")[^"]*(")')


def comparable(body: bytes) -> str:
    """The page with the parts that differ on every response (CSRF token, request id, the session's seconds left,
    the number typed, kept in its box) blanked out."""
    text = _TYPED_NUMBER.sub(r"\1\2", body.decode())
    text = re.sub(r'name="csrfmiddlewaretoken" value="[^"]+"', 'name="csrfmiddlewaretoken" value=""', text)
    text = re.sub(r'data-(csrf-token|idle-seconds|lifetime-seconds)="[^"]+"', r'data-\1=""', text)
    return re.sub(r'<span class="request-id">[0-9a-f]+</span>', '<span class="request-id"></span>', text)


def assert_no_patient_a_field(body: bytes) -> None:
    """Nothing of patient A on the page, beyond the number the user typed, kept in the search box after a miss."""
    text = _TYPED_NUMBER.sub(r"\1\2", body.decode())
    for value in PATIENT_A_FIELDS + CLINICAL_TEXT:
        assert value not in text


def record_url(patient: Patient) -> str:
    return reverse("records:patient-detail", kwargs={"public_id": patient.public_id})


def gp_role_may_not_give_itself_access() -> None:
    """A role that may neither declare a relationship nor break the glass finds no one it has no relationship with;
    one that may is offered the access page instead (tests/test_portal_grants.py)."""
    Role.objects.filter(code=JobRole.CLINICAL_PRACTITIONER).update(
        may_self_claim=False, may_break_glass=False
    )


def counts() -> tuple[int, int]:
    return Patient.objects.count(), RecordEntry.objects.count()


@pytest.mark.parametrize(
    ("method", "name"),
    [("get", "records:home"), ("get", "records:patient-search"), ("post", "records:patient-search")],
)
def test_anonymous_is_sent_to_login_and_nothing_is_audited(client, cast, method, name):
    before = counts()
    url = reverse(name)
    response = getattr(client, method)(url, {"nhs_number": "9990000018"} if method == "post" else None)
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))
    assert "9990000018" not in response["Location"]
    assert not AccessEvent.objects.exists()
    assert counts() == before


def test_anonymous_cannot_open_a_record_and_nothing_is_audited(client, cast):
    before = counts()
    response = client.get(record_url(cast.patient_a))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))
    assert_no_patient_a_field(response.content)
    assert not AccessEvent.objects.exists()
    assert counts() == before


def test_gp_at_another_practice_gets_404_without_patient_data_and_a_denied_event(client, cast):
    before = counts()
    client.force_login(cast.gp_ben)
    response = client.get(record_url(cast.patient_a))
    assert response.status_code == 404
    assert_no_patient_a_field(response.content)
    event = AccessEvent.objects.get()
    assert event.outcome == AccessEvent.Outcome.DENIED
    assert event.action == AccessEvent.Action.VIEW_RECORD
    assert event.patient_id == cast.patient_a.pk
    assert event.user_id == cast.gp_ben.pk
    assert event.sections_shown == []
    assert counts() == before


def test_denied_record_and_missing_record_give_the_same_404(client, cast):
    client.force_login(cast.gp_ben)
    denied = client.get(record_url(cast.patient_a))
    missing = client.get(reverse("records:patient-detail", kwargs={"public_id": uuid.uuid4()}))
    assert denied.status_code == missing.status_code == 404
    assert comparable(denied.content) == comparable(missing.content)
    assert list(AccessEvent.objects.order_by("id").values_list("outcome", flat=True)) == [
        AccessEvent.Outcome.DENIED,
        AccessEvent.Outcome.NOT_FOUND,
    ]


def test_gp_at_another_practice_searching_gets_the_not_found_message_and_a_denied_event(client, cast):
    gp_role_may_not_give_itself_access()
    before = counts()
    client.force_login(cast.gp_ben)
    response = client.post(reverse("records:patient-search"), {"nhs_number": "999 000 0018"})
    assert response.status_code == 200
    assert NOT_FOUND_MESSAGE in response.content.decode()
    assert_no_patient_a_field(response.content)
    event = AccessEvent.objects.get()
    assert (event.action, event.outcome) == (AccessEvent.Action.SEARCH, AccessEvent.Outcome.DENIED)
    assert event.patient_id == cast.patient_a.pk
    assert counts() == before


def test_denied_search_and_missing_search_give_the_same_page(client, cast):
    gp_role_may_not_give_itself_access()
    client.force_login(cast.gp_ben)
    denied = client.post(reverse("records:patient-search"), {"nhs_number": "9990000018"})
    missing = client.post(reverse("records:patient-search"), {"nhs_number": "9000000009"})
    assert denied.status_code == missing.status_code == 200
    assert comparable(denied.content) == comparable(missing.content)


@pytest.mark.parametrize("who", ["admin_gus", "privacy_fay"])
def test_back_office_and_privacy_staff_get_404_and_see_no_clinical_data(client, cast, who):
    before = counts()
    client.force_login(getattr(cast, who))
    response = client.get(record_url(cast.patient_a))
    assert response.status_code == 404
    assert_no_patient_a_field(response.content)
    event = AccessEvent.objects.get()
    assert event.outcome == AccessEvent.Outcome.DENIED
    assert counts() == before


@pytest.mark.parametrize("who", ["admin_gus", "privacy_fay"])
def test_back_office_and_privacy_staff_cannot_find_a_patient(client, cast, who):
    client.force_login(getattr(cast, who))
    response = client.post(reverse("records:patient-search"), {"nhs_number": "9990000018"}, follow=True)
    assert response.redirect_chain == []
    assert NOT_FOUND_MESSAGE in response.content.decode()
    assert_no_patient_a_field(response.content)
    assert AccessEvent.objects.get().outcome == AccessEvent.Outcome.DENIED


def test_superuser_home_page_says_there_is_no_staff_role_and_offers_no_search(client, cast):
    client.force_login(cast.admin_gus)
    response = client.get(reverse("records:home"))
    assert response.status_code == 200
    text = response.content.decode()
    assert "no staff role" in text
    assert 'name="nhs_number"' not in text


def test_malformed_record_address_is_a_plain_404_without_an_access_event(client, cast):
    client.force_login(cast.gp_ada)
    response = client.get("/patients/not-a-uuid/")
    assert response.status_code == 404
    assert not AccessEvent.objects.exists()


def test_record_page_refuses_post(client, cast):
    client.force_login(cast.gp_ada)
    response = client.post(record_url(cast.patient_a))
    assert response.status_code == 405
    assert not AccessEvent.objects.exists()
