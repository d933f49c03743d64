"""No page the application answers may be kept by a browser or a proxy: any of them can show patient data."""

import pytest
from django.contrib.staticfiles import finders
from django.urls import reverse


def _kept_out_of_caches(response) -> bool:
    directives = {part.strip() for part in response.get("Cache-Control", "").split(",")}
    return {"no-store", "no-cache", "private"} <= directives


def test_the_record_page_and_the_search_are_kept_out_of_caches(client, cast):
    client.force_login(cast.gp_ada)
    pages = [
        client.get(reverse("records:home")),
        client.get(reverse("records:patient-search")),
        client.post(reverse("records:patient-search"), {"nhs_number": cast.patient_a.nhs_number}),
        client.get(reverse("records:patient-detail", kwargs={"public_id": cast.patient_a.public_id})),
    ]
    assert [response.status_code for response in pages] == [200, 200, 303, 200]
    assert all(_kept_out_of_caches(response) for response in pages)


def test_a_refusal_is_kept_out_of_caches_too(client, cast):
    client.force_login(cast.gp_ben)
    response = client.get(reverse("records:patient-detail", kwargs={"public_id": cast.patient_a.public_id}))
    assert response.status_code == 404
    assert _kept_out_of_caches(response)


@pytest.mark.parametrize("name", ["login", "admin:login"])
def test_pages_for_signing_in_are_kept_out_of_caches(client, name):
    response = client.get(reverse(name))
    assert response.status_code == 200
    assert _kept_out_of_caches(response)


def test_the_partner_api_answers_are_kept_out_of_caches(client, db):
    response = client.post(
        reverse("api:batch-push", kwargs={"code": "any"}), data=b"{}", content_type="application/json"
    )
    assert response.status_code == 401
    assert _kept_out_of_caches(response)


def test_static_files_stay_cacheable(client):
    assert finders.find("css/sharedcare.css") is not None
    response = client.get("/static/css/sharedcare.css")
    assert response.status_code == 200
    assert "no-store" not in response.get("Cache-Control", "")
