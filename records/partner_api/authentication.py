"""DRF authentication for partner systems: `Authorization: Bearer <key>`, one key per PartnerCredential.

Used only by the partner API views (records/partner_api/views.py). No session, no user account and no CSRF token is involved:
a partner system is not a person, and a request either carries a valid key or is refused with 401.
"""

from __future__ import annotations

from rest_framework.authentication import BaseAuthentication, get_authorization_header
from rest_framework.exceptions import AuthenticationFailed
from rest_framework.request import Request

from records.feeds.push.keys import key_prefix_of, partner_credential_for_key, partner_credential_touch
from records.models import PartnerCredential

KEYWORD = "Bearer"


class PartnerClient:
    """What `request.user` is on the partner API: the partner system behind a valid key, never a Django user."""

    is_authenticated = True
    is_anonymous = False

    def __init__(self, credential: PartnerCredential) -> None:
        self.credential = credential
        self.organisation = credential.organisation

    def __str__(self) -> str:
        return str(self.credential)


class PartnerKeyRefused(AuthenticationFailed):
    """A key was presented and refused; carries what may be recorded about it."""

    def __init__(
        self, detail: str, *, key_prefix: str = "", credential: PartnerCredential | None = None
    ) -> None:
        super().__init__(detail)
        self.key_prefix = key_prefix
        self.credential = credential


_NOT_RECOGNISED = "The partner key was not recognised, or it has been withdrawn."


class PartnerKeyAuthentication(BaseAuthentication):
    def authenticate(self, request: Request) -> tuple[PartnerClient, PartnerCredential] | None:
        parts = get_authorization_header(request).split()
        if not parts or parts[0].lower() != KEYWORD.lower().encode():
            # No bearer key at all: the permission check answers 401 with the WWW-Authenticate challenge.
            return None
        if len(parts) != 2:
            raise PartnerKeyRefused(f"Send the key as `Authorization: {KEYWORD} <key>`, with nothing else.")
        try:
            presented = parts[1].decode("ascii")
        except UnicodeDecodeError:
            raise PartnerKeyRefused(_NOT_RECOGNISED) from None
        prefix = key_prefix_of(presented)
        credential = partner_credential_for_key(presented)
        if credential is None:
            raise PartnerKeyRefused(_NOT_RECOGNISED, key_prefix=prefix)
        if not credential.is_active or not credential.organisation.is_active:
            raise PartnerKeyRefused(_NOT_RECOGNISED, key_prefix=prefix, credential=credential)
        partner_credential_touch(credential)
        return PartnerClient(credential), credential

    def authenticate_header(self, request: Request) -> str:
        return f'{KEYWORD} realm="sharedcare partner API"'
