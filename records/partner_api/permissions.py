"""Who may call the partner API: only a partner's system, by its key. Each partner API view names this."""

from __future__ import annotations

from rest_framework.permissions import BasePermission
from rest_framework.request import Request
from rest_framework.views import APIView

from records.models import PartnerCredential
from records.partner_api.authentication import PartnerClient


class IsPartnerSystem(BasePermission):
    """Allows only requests authenticated by a partner key; denies everything else, sessions included."""

    def has_permission(self, request: Request, view: APIView) -> bool:
        return isinstance(request.auth, PartnerCredential) and isinstance(request.user, PartnerClient)
