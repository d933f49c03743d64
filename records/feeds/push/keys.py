"""Partner keys: made once and shown once; only the sha256 and the first characters are kept."""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass

from django.utils import timezone

from records.ingest.items import clean
from records.models import Organisation, PartnerCredential

KEY_START = "sc_"
KEY_PREFIX_LENGTH = 12
# What `secrets.token_urlsafe` produces after the start; anything else is not a key and is not looked up.
_KEY_PATTERN = re.compile(r"^sc_[A-Za-z0-9_-]{20,200}$")


@dataclass(frozen=True)
class NewKey:
    key: str
    prefix: str
    hash: str


def key_hash(key: str) -> str:
    # A key carries 256 random bits: a fast hash is enough, there is nothing to guess from a dictionary.
    return hashlib.sha256(key.encode()).hexdigest()


def key_new() -> NewKey:
    """A fresh partner key, with the prefix and hash that are all the database keeps of it."""
    key = KEY_START + secrets.token_urlsafe(32)
    return NewKey(key=key, prefix=key[:KEY_PREFIX_LENGTH], hash=key_hash(key))


def key_prefix_of(presented: str) -> str:
    """The part of a presented key that may be recorded: its first characters, made safe to store."""
    return clean(presented[:KEY_PREFIX_LENGTH])


def partner_credential_create(*, organisation: Organisation, name: str) -> tuple[PartnerCredential, str]:
    """Make an active key for a partner's system; returns the credential and the key, which exists nowhere else.

    The caller shows the key once; it cannot be recovered afterwards, only replaced by a new credential.
    """
    new = key_new()
    credential = PartnerCredential.objects.create(
        organisation=organisation, name=name, key_prefix=new.prefix, key_hash=new.hash
    )
    return credential, new.key


def partner_credential_for_key(presented: str) -> PartnerCredential | None:
    """The credential whose key this is, active or not; None for anything that is not one of our keys."""
    if not _KEY_PATTERN.match(presented):
        return None
    credential = (
        PartnerCredential.objects.select_related("organisation")
        .filter(key_prefix=presented[:KEY_PREFIX_LENGTH])
        .first()
    )
    if credential is None:
        return None
    if not hmac.compare_digest(credential.key_hash, key_hash(presented)):
        return None
    return credential


def partner_credential_touch(credential: PartnerCredential) -> None:
    # A queryset update: no auditlog entry for every request, only for changes people make.
    PartnerCredential.objects.filter(pk=credential.pk).update(last_used_at=timezone.now())
