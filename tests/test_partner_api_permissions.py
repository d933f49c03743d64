"""DRF denies by default: a view serves no one until it names what it allows, and every partner API view does."""

import pytest
from django.contrib.auth import get_user_model
from django.urls import URLPattern, get_resolver
from rest_framework.response import Response
from rest_framework.test import APIRequestFactory, force_authenticate
from rest_framework.views import APIView

from records.partner_api.permissions import IsPartnerSystem
from records.partner_api.views import PartnerAPIView

SECRET = "a field no one was allowed to see"


class _NamesNothing(APIView):
    def get(self, request):
        return Response({"secret": SECRET})


class _PartnerViewNamesNothing(PartnerAPIView):
    def get(self, request):
        return Response({"secret": SECRET})


def test_a_drf_view_that_names_no_permission_refuses_a_stranger():
    response = _NamesNothing.as_view()(APIRequestFactory().get("/anything/"))
    response.render()

    assert response.status_code == 403
    assert SECRET not in response.content.decode()


def test_a_drf_view_that_names_no_permission_refuses_even_a_superuser():
    request = APIRequestFactory().get("/anything/")
    force_authenticate(request, user=get_user_model()(username="root", is_staff=True, is_superuser=True))

    response = _NamesNothing.as_view()(request)
    response.render()

    assert response.status_code == 403
    assert SECRET not in response.content.decode()


def test_a_partner_api_view_that_names_nothing_refuses_a_valid_partner_key(hospital_key):
    request = APIRequestFactory().get("/anything/", HTTP_AUTHORIZATION=f"Bearer {hospital_key}")

    response = _PartnerViewNamesNothing.as_view()(request)
    response.render()

    assert response.status_code == 403
    assert response["Content-Type"] == "application/problem+json"
    assert SECRET not in response.content.decode()


def _partner_api_views() -> list[type[APIView]]:
    api_patterns = get_resolver().url_patterns
    (api,) = [pattern for pattern in api_patterns if getattr(pattern, "namespace", None) == "api"]
    views = [pattern.callback.view_class for pattern in api.url_patterns if isinstance(pattern, URLPattern)]
    assert views, "the partner API has no views"
    return views


@pytest.mark.parametrize("view", _partner_api_views(), ids=lambda view: view.__name__)
def test_every_partner_api_view_names_what_it_allows(view):
    # Named on the view itself, not inherited: a reader sees at the view who may call it.
    assert "authentication_classes" in vars(view)
    assert "permission_classes" in vars(view)
    assert list(view.permission_classes) == [IsPartnerSystem]
