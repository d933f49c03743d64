"""Every portal URL is on an explicit list, says how it reaches patient data, and turns strangers away."""

import uuid

import pytest
from django.urls import get_resolver, reverse

from audit.models import AccessEvent
from tests.builders import PORTAL_URLS, url_names

EXAMPLE_KWARGS = {
    "records:patient-detail": {"public_id": uuid.UUID(int=1)},
    "records:patient-print": {"public_id": uuid.UUID(int=1)},
    "records:document-view": {"public_id": uuid.UUID(int=1), "entry_id": 1},
    "records:patient-timeline": {"public_id": uuid.UUID(int=1)},
    "records:patient-access": {"public_id": uuid.UUID(int=1)},
    "records:relationship-declare": {"public_id": uuid.UUID(int=1)},
    "records:break-glass": {"public_id": uuid.UUID(int=1)},
    "records:grant-end": {"reference": "BG-AAAAAAAA"},
    "records:alert-detail": {"alert_id": 1},
    "records:objection-new-for-patient": {"public_id": uuid.UUID(int=1)},
    "records:objection-detail": {"reference": "OB-AAAAAAAA"},
    "records:objection-identity-lookup": {"reference": "OB-AAAAAAAA"},
    "records:objection-identity-verify": {"reference": "OB-AAAAAAAA"},
    "records:objection-identity-not-found": {"reference": "OB-AAAAAAAA"},
    "records:objection-clinical-input": {"reference": "OB-AAAAAAAA"},
    "records:objection-decide": {"reference": "OB-AAAAAAAA"},
    "records:objection-inform": {"reference": "OB-AAAAAAAA"},
    "records:objection-letter": {"reference": "OB-AAAAAAAA"},
    "records:objection-extend": {"reference": "OB-AAAAAAAA"},
    "records:objection-withdraw": {"reference": "OB-AAAAAAAA"},
    "records:subject-access-detail": {"reference": "SAR-AAAAAAAA"},
    "records:subject-access-verify": {"reference": "SAR-AAAAAAAA"},
    "records:subject-access-extend": {"reference": "SAR-AAAAAAAA"},
    "records:subject-access-fulfil": {"reference": "SAR-AAAAAAAA"},
    "records:subject-access-report": {"reference": "SAR-AAAAAAAA"},
    "records:subject-access-withdraw": {"reference": "SAR-AAAAAAAA"},
    "records:opt-out-remove": {"opt_out_id": 1},
    "records:access-report-patient": {"public_id": uuid.UUID(int=1)},
    "records:access-report-pdf": {"public_id": uuid.UUID(int=1)},
    "records:access-report-csv": {"public_id": uuid.UUID(int=1)},
    "records:audit-user-timeline": {"user_id": 1},
}


def test_every_portal_url_is_on_the_list():
    portal = {name for name in url_names(get_resolver().url_patterns) if name.startswith("records:")}
    assert portal == set(PORTAL_URLS)


@pytest.mark.parametrize("name", sorted(PORTAL_URLS))
def test_every_portal_url_sends_strangers_to_log_in(client, cast, name):
    url = reverse(name, kwargs=EXAMPLE_KWARGS.get(name))
    for method in ("get", "post"):
        response = getattr(client, method)(url)
        assert response.status_code == 302
        assert response["Location"].startswith(reverse("login"))
    assert not AccessEvent.objects.exists()


@pytest.mark.parametrize("name", sorted(name for name, kind in PORTAL_URLS.items() if kind == "door"))
def test_door_views_call_the_door(client, cast, name, monkeypatch):
    import records.portal.views

    calls: list[str] = []
    for door in ("get_patient_for_user", "patient_search_for_user"):
        original = getattr(records.portal.views, door)

        def spy(*args, _original=original, _door=door, **kwargs):
            calls.append(_door)
            return _original(*args, **kwargs)

        monkeypatch.setattr(records.portal.views, door, spy)
    client.force_login(cast.gp_ada)
    if name == "records:patient-search":
        client.post(reverse(name), {"nhs_number": "9990000018"})
        expected = ["patient_search_for_user"]
    else:
        client.get(reverse(name, kwargs={"public_id": cast.patient_a.public_id}))
        expected = ["get_patient_for_user"]
    assert calls == expected
