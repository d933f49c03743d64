"""Discarding quarantined records: only with a reason, only pending ones, and in the change log with who did it."""

import pytest
from auditlog.models import LogEntry
from django.core.exceptions import ValidationError

from records.ingest.quarantine import DISCARD_REASON_REQUIRED, quarantine_discard
from records.models import QuarantinedRecord
from tests.builders import NEWCOMER, OTHER_NEWCOMER, condition, ingest

Status = QuarantinedRecord.Status


@pytest.mark.parametrize("reason", ["", "   \n "])
def test_discarding_without_a_reason_is_refused_and_changes_nothing(cast, reason):
    ingest(cast.cuh_feed, condition("c1", NEWCOMER))
    record = QuarantinedRecord.objects.get()

    with pytest.raises(ValidationError) as refused:
        quarantine_discard([record.pk], user=cast.admin_gus, reason=reason)

    assert refused.value.messages == [DISCARD_REASON_REQUIRED]
    record.refresh_from_db()
    assert (record.status, record.discarded_reason, record.discarded_by) == (Status.PENDING, "", None)
    assert not LogEntry.objects.get_for_object(record).exists()


def test_discarding_closes_the_records_with_the_reason_and_who_decided(cast):
    ingest(cast.cuh_feed, condition("c1", NEWCOMER), condition("c2", OTHER_NEWCOMER))
    records = list(QuarantinedRecord.objects.order_by("pk"))

    discarded = quarantine_discard(
        [record.pk for record in records], user=cast.admin_gus, reason="  Test data sent by mistake  "
    )

    assert discarded == [record.pk for record in records]
    for record in records:
        record.refresh_from_db()
        assert record.status == Status.DISCARDED
        assert record.discarded_reason == "Test data sent by mistake"
        assert record.discarded_by == cast.admin_gus
        assert record.closed_at is not None
        change = LogEntry.objects.get_for_object(record).get()
        assert change.actor == cast.admin_gus
        assert change.changes_dict["status"] == ["pending", "discarded"]
        assert change.changes_dict["discarded_reason"] == ["", "Test data sent by mistake"]
        assert "raw_payload" not in change.changes_dict


def test_discarding_leaves_records_that_are_not_pending_as_they_were(cast):
    ingest(cast.cuh_feed, condition("c1", NEWCOMER), condition("c2", OTHER_NEWCOMER))
    pending, replayed = QuarantinedRecord.objects.order_by("pk")
    QuarantinedRecord.objects.filter(pk=replayed.pk).update(status=Status.REPLAYED)

    discarded = quarantine_discard([pending.pk, replayed.pk], user=cast.admin_gus, reason="Duplicate")

    assert discarded == [pending.pk]
    replayed.refresh_from_db()
    assert (replayed.status, replayed.discarded_reason) == (Status.REPLAYED, "")
