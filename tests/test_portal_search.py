"""Finding a patient by NHS number: POST only, plain messages, audited only once the number is well formed."""

import re

import pytest
from django.urls import reverse

from audit.models import AccessEvent
from records.portal.forms import NOT_FOUND_MESSAGE

SEARCH = "records:patient-search"


def test_search_page_shows_a_labelled_nhs_number_field(client, cast):
    client.force_login(cast.gp_ada)
    response = client.get(reverse(SEARCH))
    assert response.status_code == 200
    text = response.content.decode()
    assert re.search(r'<label\s+for="id_nhs_number"', text)
    assert 'id="id_nhs_number"' in text
    assert 'method="post"' in text
    assert not AccessEvent.objects.exists()


def test_nhs_number_in_a_query_string_is_ignored_and_not_searched(client, cast):
    client.force_login(cast.gp_ada)
    response = client.get(reverse(SEARCH), {"nhs_number": "9990000018"})
    assert response.status_code == 200
    assert "9990000018" not in response.content.decode()
    assert not AccessEvent.objects.exists()


@pytest.mark.parametrize("typed", ["9990000018", "999 000 0018", "999-000-0018", " 999 000-0018 "])
def test_search_hit_redirects_with_303_to_the_record_without_the_nhs_number(client, cast, typed):
    client.force_login(cast.gp_ada)
    response = client.post(reverse(SEARCH), {"nhs_number": typed})
    assert response.status_code == 303
    location = response["Location"]
    assert location == reverse("records:patient-detail", kwargs={"public_id": cast.patient_a.public_id})
    assert "9990000018" not in location
    event = AccessEvent.objects.get()
    assert (event.action, event.outcome) == (AccessEvent.Action.SEARCH, AccessEvent.Outcome.ALLOWED)
    assert event.patient_id == cast.patient_a.pk


@pytest.mark.parametrize(
    ("typed", "message"),
    [
        ("999 000 0019", "the check digit does not match"),
        ("12345", "An NHS number has 10 digits; this has 5."),
        ("999 000 00188", "An NHS number has 10 digits; this has 11."),
        ("999 ABC 0018", "An NHS number has digits only"),
        ("", "Enter an NHS number."),
    ],
)
def test_malformed_nhs_number_gets_a_clear_message_and_no_access_event(client, cast, typed, message):
    client.force_login(cast.gp_ada)
    response = client.post(reverse(SEARCH), {"nhs_number": typed})
    assert response.status_code == 200
    text = response.content.decode()
    assert message in text
    # The error summary links to the field, and the field says it is invalid.
    assert '<a href="#id_nhs_number">' in text
    assert 'aria-invalid="true"' in text
    assert not AccessEvent.objects.exists()


def test_search_miss_shows_the_not_found_message_and_audits_not_found(client, cast):
    client.force_login(cast.gp_ada)
    response = client.post(reverse(SEARCH), {"nhs_number": "900 000 0009"})
    assert response.status_code == 200
    assert NOT_FOUND_MESSAGE in response.content.decode()
    event = AccessEvent.objects.get()
    assert (event.action, event.outcome) == (AccessEvent.Action.SEARCH, AccessEvent.Outcome.NOT_FOUND)
    assert event.user_id == cast.gp_ada.pk
    assert event.patient_id is None


def test_a_miss_keeps_the_number_typed_and_shows_no_patient(client, cast):
    """After a miss the number stays in its box, to be corrected rather than typed again; nothing else of a patient
    is on the page. (A number held for a patient this user may not see answers the same: tests/test_portal_access.py.)"""
    client.force_login(cast.gp_ada)
    response = client.post(reverse(SEARCH), {"nhs_number": "900 000 0009"})
    assert response.status_code == 200
    text = response.content.decode()
    assert re.search(r'<input[^>]*name="nhs_number"[^>]*value="900 000 0009"', text)
    assert NOT_FOUND_MESSAGE in text
    assert not re.search(r"/patients/[0-9a-f-]{36}/", text)


def test_search_form_on_home_posts_to_the_search_page(client, cast):
    client.force_login(cast.gp_ada)
    text = client.get(reverse("records:home")).content.decode()
    assert f'action="{reverse(SEARCH)}"' in text
    assert 'method="post"' in text
