"""Every portal URL is on an explicit list, says how it reaches patient data, and turns strangers away."""

import uuid

import pytest
from django.urls import URLPattern, URLResolver, get_resolver, reverse

from audit.models import AccessEvent

# How each portal view may touch a patient. A new portal URL fails `test_every_portal_url_is_on_the_list` until
# someone decides which of these it is (and, for "door", routes it through records.access).
PORTAL_URLS = {
    "records:home": "no patient data",
    "records:patient-search": "door",
    "records:patient-detail": "door",
}
EXAMPLE_KWARGS = {"records:patient-detail": {"public_id": uuid.UUID(int=1)}}


def _names(patterns, namespace: str = "") -> set[str]:
    found: set[str] = set()
    for pattern in patterns:
        if isinstance(pattern, URLResolver):
            inner = f"{namespace}{pattern.namespace}:" if pattern.namespace else namespace
            found |= _names(pattern.url_patterns, inner)
        elif isinstance(pattern, URLPattern) and pattern.name:
            found.add(f"{namespace}{pattern.name}")
    return found


def test_every_portal_url_is_on_the_list():
    portal = {name for name in _names(get_resolver().url_patterns) if name.startswith("records:")}
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
    else:
        client.get(reverse(name, kwargs={"public_id": cast.patient_a.public_id}))
    assert calls
