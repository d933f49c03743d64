"""Sign-in through OpenID Connect as NHS CIS2 Authentication shapes it (mozilla-django-oidc does the protocol).

What always holds:
- A CIS2 sign-in reaches an account the back office made, never a new one: the token's `uid` (the SDS user id) must
  name exactly one active user through their role profiles' `sds_user_id`.
- It acts under exactly the role chosen at CIS2: `selected_roleid` must be one of the user's `nhsid_nrbac_roles`, a
  role profile of that user must carry it as `sds_role_profile_id`, and that role's `org_code` must be the
  profile's organisation. Anything else is refused, logged with the reason, and leaves no one signed in.
- The ID token is checked for its signature, nonce, issuer and audience, and userinfo must name the same subject.
- With OIDC unconfigured (settings.OIDC_ENABLED false) the backend authenticates no one.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import jwt
from django.conf import settings
from django.core.exceptions import SuspiciousOperation
from django.http import HttpRequest
from mozilla_django_oidc.auth import OIDCAuthenticationBackend

from consent.models import StaffProfile

logger = logging.getLogger(__name__)

# Where a successful sign-in leaves the role profile it matched, for the callback to select it in the session.
MATCHED_PROFILE_ATTRIBUTE = "cis2_matched_profile_id"
# Where a refused sign-in leaves its reason, for the callback to show the refusal page rather than a retry.
REFUSAL_ATTRIBUTE = "cis2_refusal"


@dataclass(frozen=True)
class Refusal:
    """Why a CIS2 sign-in was refused, for the log; the page says only that the role is not set up."""

    reason: str


def _selected_role(claims: Mapping[str, Any]) -> dict[str, Any] | None:
    """The role object of `nhsid_nrbac_roles` whose `person_roleid` is the `selected_roleid`, if there is one."""
    selected = claims.get("selected_roleid")
    roles = claims.get("nhsid_nrbac_roles")
    if not isinstance(selected, str) or not isinstance(roles, list):
        return None
    return next(
        (role for role in roles if isinstance(role, dict) and role.get("person_roleid") == selected), None
    )


def cis2_profile_match(claims: Mapping[str, Any]) -> StaffProfile | Refusal:
    """The role profile a CIS2 sign-in acts under, or why it may not sign in. Deny by default: each rule one line."""
    uid = claims.get("uid")
    selected = claims.get("selected_roleid")
    if not isinstance(uid, str) or not uid:
        return Refusal("the token names no uid")
    if not isinstance(selected, str) or not selected:
        return Refusal("the token names no selected role")
    role = _selected_role(claims)
    if role is None:
        return Refusal("the selected role is not among the user's national RBAC roles")
    profiles = list(StaffProfile.objects.select_related("user", "organisation").filter(sds_user_id=uid))
    if not profiles:
        return Refusal("no role profile carries this uid")
    if len({profile.user_id for profile in profiles}) != 1:
        return Refusal("role profiles of several users carry this uid")
    if not profiles[0].user.is_active:
        return Refusal("the user is not active")
    profile = next((held for held in profiles if held.sds_role_profile_id == selected), None)
    if profile is None:
        return Refusal("no role profile of the user carries the selected role")
    if profile.organisation.ods_code != role.get("org_code"):
        return Refusal("the selected role's organisation is not the role profile's")
    return profile


class Cis2AuthenticationBackend(OIDCAuthenticationBackend):  # type: ignore[misc]
    """Authenticates the OIDC callback only (a nonce is passed), and only a user `cis2_profile_match` accepts."""

    def authenticate(
        self,
        request: HttpRequest | None,
        nonce: str | None = None,
        code_verifier: str | None = None,
        **credentials: Any,
    ) -> Any:
        # Password sign-ins reach every backend too; this one answers only its own callback.
        if not settings.OIDC_ENABLED or request is None or nonce is None or credentials:
            return None
        try:
            return super().authenticate(request, nonce=nonce, code_verifier=code_verifier)
        # requests' errors are OSErrors (the provider did not answer, or answered with an error); a token that is
        # expired, wrongly signed or for another client is a PyJWTError or SuspiciousOperation.
        except (SuspiciousOperation, OSError, jwt.PyJWTError) as error:
            logger.warning("CIS2 sign-in failed: %s", error)
            return None

    def verify_token(self, token: str, **kwargs: Any) -> dict[str, Any]:
        payload: dict[str, Any] = super().verify_token(token, **kwargs)
        audience = payload.get("aud")
        audiences = audience if isinstance(audience, list) else [audience]
        if payload.get("iss") != settings.OIDC_ISSUER:
            raise SuspiciousOperation("the token's issuer is not the configured one")
        if settings.OIDC_RP_CLIENT_ID not in audiences:
            raise SuspiciousOperation("the token was not issued to this client")
        return payload

    def get_or_create_user(self, access_token: str, id_token: str, payload: dict[str, Any]) -> Any:
        userinfo = self.get_userinfo(access_token, id_token, payload)
        if userinfo.get("sub") != payload.get("sub"):
            raise SuspiciousOperation("userinfo names another subject than the ID token")
        # CIS2 gives the selected role in the ID token; userinfo carries the roles it must be one of.
        claims = {**userinfo, **{key: payload[key] for key in ("selected_roleid", "uid") if key in payload}}
        match = cis2_profile_match(claims)
        if isinstance(match, Refusal):
            logger.warning(
                "CIS2 sign-in refused: %s (uid %r, selected role %r)",
                match.reason,
                claims.get("uid"),
                claims.get("selected_roleid"),
            )
            setattr(self.request, REFUSAL_ATTRIBUTE, match.reason)
            return None
        user = match.user
        setattr(user, MATCHED_PROFILE_ATTRIBUTE, match.pk)
        logger.info("CIS2 sign-in of user %s under role profile %s", user.pk, match.pk)
        return user

    def get_user(self, user_id: int) -> Any:
        user = super().get_user(user_id)
        return user if user is not None and user.is_active else None
