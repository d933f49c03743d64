"""The project's default DRF permission (`REST_FRAMEWORK` in settings): deny everything.

A DRF view that does not name its own permission classes is refused whoever calls it. Imported by DRF while its
own modules are still loading, so this module imports nothing of the project and DRF's views only for types.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rest_framework.permissions import BasePermission

if TYPE_CHECKING:
    from rest_framework.request import Request
    from rest_framework.views import APIView


class DenyAll(BasePermission):
    """Refuses every request and every object: what a view gets when it does not say what it allows."""

    def has_permission(self, request: Request, view: APIView) -> bool:
        return False

    def has_object_permission(self, request: Request, view: APIView, obj: Any) -> bool:
        return False
