"""Every URL in the project is accounted for: public, staff-only back office, or the portal's own list."""

import pytest
from django.urls import reverse

from audit.models import AccessEvent
from tests.builders import PORTAL_URLS, url_names

# Reachable without signing in, and none shows patient data.
PUBLIC = {"login"}
# Signed-in account pages that show no patient data.
ACCOUNT = {"logout", "password_change", "password_change_done"}
# The partner API: a partner key only (tests/test_push_api.py), and no patient data in any answer.
PARTNER_API = {"api:batch-push", "api:batch-detail"}


def _all_names() -> set[str]:
    from django.urls import get_resolver

    return url_names(get_resolver().url_patterns)


def test_every_url_is_public_account_back_office_or_portal():
    unexplained = {
        name
        for name in _all_names()
        if name not in PUBLIC | ACCOUNT | PARTNER_API
        and name not in PORTAL_URLS
        and not name.startswith("admin:")
    }
    assert unexplained == set()


@pytest.mark.parametrize("name", sorted(PUBLIC))
def test_public_pages_open_without_signing_in(client, name):
    assert client.get(reverse(name)).status_code == 200


@pytest.mark.parametrize("name", ["password_change", "password_change_done"])
def test_account_pages_need_a_signed_in_user(client, name):
    response = client.get(reverse(name))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


def test_back_office_turns_away_clinicians(client, cast):
    client.force_login(cast.gp_ada)
    for name in (
        "admin:index",
        "admin:records_quarantinedrecord_changelist",
        "admin:audit_accessevent_changelist",
    ):
        response = client.get(reverse(name))
        assert response.status_code == 302, name
        assert response["Location"].startswith(reverse("admin:login"))
    assert not AccessEvent.objects.exists()
