"""A user may search for only so many patients an hour: past it, searches are refused and audited, and the privacy
officer gets one alert for that hour."""

from django.urls import reverse

from audit.models import AccessEvent, Alert


def search(client, number: str, address: str = "127.0.0.1"):
    return client.post(reverse("records:patient-search"), {"nhs_number": number}, REMOTE_ADDR=address)


def test_searches_past_the_hourly_limit_are_refused_audited_and_alerted_once(client, cast, settings):
    settings.PATIENT_SEARCHES_PER_HOUR = 3
    client.force_login(cast.gp_ada)
    for _ in range(3):
        assert search(client, cast.patient_a.nhs_number).status_code == 303

    refused = [search(client, cast.patient_a.nhs_number), search(client, cast.patient_b.nhs_number)]

    assert [response.status_code for response in refused] == [429, 429]
    body = refused[0].content.decode()
    assert "Search limit reached" in body and "more than 3 patients" in body
    assert cast.patient_a.family_name not in body
    denied = AccessEvent.objects.filter(outcome=AccessEvent.Outcome.DENIED).order_by("id")
    assert [(event.action, event.username, event.patient_id, event.reason) for event in denied] == [
        (AccessEvent.Action.SEARCH, "gp.ada", None, "hourly patient search limit reached")
    ] * 2
    assert [event.query for event in denied] == [cast.patient_a.nhs_number, cast.patient_b.nhs_number]
    alert = Alert.objects.get()
    assert (alert.kind, alert.username, alert.patient_id) == (Alert.Kind.SEARCH_LIMIT, "gp.ada", None)
    assert "More than 3 patient searches" in alert.reason and cast.patient_a.nhs_number not in alert.reason


def test_the_limit_is_each_users_own_and_bad_input_does_not_count(client, cast, settings):
    settings.PATIENT_SEARCHES_PER_HOUR = 2
    client.force_login(cast.gp_ada)
    for _ in range(3):
        assert search(client, "not a number").status_code == 200
    for _ in range(2):
        assert search(client, cast.patient_a.nhs_number).status_code == 303
    assert search(client, cast.patient_a.nhs_number).status_code == 429

    client.force_login(cast.gp_ben)
    assert search(client, cast.patient_b.nhs_number).status_code == 303
    assert Alert.objects.filter(username="gp.ben").count() == 0


def test_the_privacy_officer_reviews_a_search_limit_alert_like_any_other(client, cast, settings):
    settings.PATIENT_SEARCHES_PER_HOUR = 1
    client.force_login(cast.gp_ada)
    search(client, cast.patient_a.nhs_number)
    search(client, cast.patient_a.nhs_number)
    alert = Alert.objects.get(kind=Alert.Kind.SEARCH_LIMIT)
    client.force_login(cast.privacy_fay)

    listed = client.get(reverse("records:alert-list")).content.decode()
    reviewed = client.post(
        reverse("records:alert-detail", kwargs={"alert_id": alert.pk}), {"outcome": "appropriate", "note": ""}
    )

    assert "Patient searches past the hourly limit" in listed and "gp.ada" in listed
    opened = client.get(reverse("records:alert-detail", kwargs={"alert_id": alert.pk})).content.decode()
    assert "the searches past the limit were refused" in opened and cast.patient_a.family_name not in opened
    assert reviewed.status_code in (302, 303)
    alert.refresh_from_db()
    assert alert.outcome == Alert.Outcome.APPROPRIATE
