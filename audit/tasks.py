"""Scheduled checks and anchors of the access trail."""

import logging

from celery import shared_task
from django.conf import settings

from audit.selectors import audit_trail_verify
from audit.services import audit_checkpoint_write

logger = logging.getLogger(__name__)


class AuditChainBroken(Exception):
    pass


@shared_task(name="audit.access_chain_verify_task")
def access_chain_verify_task() -> int:
    """Walk the whole hash chain and its checkpoints; log and fail loudly if any row was altered, removed or inserted.

    Takes no arguments and touches no patient data; safe to run twice. Returns the number of breaks (0).
    """
    breaks = list(audit_trail_verify(settings.AUDIT_ANCHOR_KEY))
    for found in breaks:
        logger.error("%s", found)
    if breaks:
        raise AuditChainBroken(f"The audit chain is broken in {len(breaks)} place(s).")
    logger.info("audit chain intact")
    return 0


@shared_task(name="audit.audit_checkpoint_write_task")
def audit_checkpoint_write_task() -> int:
    """Anchor the chain's head in a new checkpoint and in the log.

    Takes no arguments and touches no patient data; safe to run twice. Returns the checkpoint's id.
    """
    return audit_checkpoint_write().pk
