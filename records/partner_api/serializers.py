"""What the partner API says about things; counts and states only, never patient data nor payloads."""

from __future__ import annotations

from typing import Any

from django.urls import reverse
from rest_framework import serializers

from records.feeds.push.receive import quarantine_reason_counts
from records.models import PushedBatch

# The run's own error can quote a database message naming a record; the partner gets this sentence instead and the
# back office sees the error on the batch.
FAILED_DETAIL = (
    "The batch could not be ingested and nothing from it was kept. The payload is kept; the shared care record "
    "team can see why and process it again."
)


class PushedBatchSerializer(serializers.Serializer[PushedBatch]):
    batch_id = serializers.UUIDField(source="public_id")
    feed = serializers.CharField(source="feed.code")
    status = serializers.CharField()
    received_at = serializers.DateTimeField()
    content_type = serializers.CharField()
    size = serializers.IntegerField()
    sha256 = serializers.CharField(source="checksum")
    status_url = serializers.SerializerMethodField()
    result = serializers.SerializerMethodField()

    def get_status_url(self, batch: PushedBatch) -> str:
        url = reverse("api:batch-detail", args=[batch.public_id])
        request = self.context.get("request")
        return request.build_absolute_uri(url) if request is not None else url

    def get_result(self, batch: PushedBatch) -> dict[str, Any] | None:
        run = batch.ingest_run
        if batch.status not in (PushedBatch.Status.DONE, PushedBatch.Status.FAILED) or run is None:
            return None
        return {
            "ingest_status": run.status,
            "started_at": serializers.DateTimeField().to_representation(run.started_at),
            "finished_at": (
                serializers.DateTimeField().to_representation(run.finished_at) if run.finished_at else None
            ),
            "read": run.resources_read,
            "created": run.created,
            "updated": run.updated,
            "unchanged": run.unchanged,
            "quarantined": run.quarantined,
            "quarantine_reasons": quarantine_reason_counts(run),
            "error": FAILED_DETAIL if batch.status == PushedBatch.Status.FAILED else "",
        }
