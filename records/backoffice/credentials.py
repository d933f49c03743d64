"""Back office for the partner API: partner keys, the batches partners pushed, and every push attempt.

A key is shown once, in the message after it is created; only its hash and first characters are kept. Pushed
payloads are patient data and appear nowhere in the admin (the size and sha256 say which bytes were received).
Attempts are a record: nobody adds, changes or deletes them here. A batch's error text can quote the payload, so a
batch's page goes through the door (`FeedSupportAdmin`) and shows the error masked until revealed; attempts hold no
text from the partner.
"""

from functools import partial
from typing import Any

from django.contrib import admin, messages
from django.db import transaction
from django.db.models import QuerySet
from django.http import HttpRequest

from records.backoffice.support import FeedSupportAdmin
from records.feeds.push.keys import key_new
from records.feeds.push.process import pushed_batches_requeue
from records.models import Organisation, PartnerCredential, PushAttempt, PushedBatch
from records.tasks import pushed_batch_process_task


@admin.register(PartnerCredential)
class PartnerCredentialAdmin(admin.ModelAdmin[PartnerCredential]):
    list_display = ("name", "organisation", "key_prefix", "is_active", "created_at", "last_used_at")
    list_filter = ("is_active", "organisation")
    search_fields = ("name", "key_prefix", "organisation__name", "organisation__ods_code")
    list_select_related = ("organisation",)
    autocomplete_fields = ("organisation",)
    actions = ("withdraw",)

    def get_fields(self, request: HttpRequest, obj: PartnerCredential | None = None) -> tuple[str, ...]:
        if obj is None:
            return ("organisation", "name")
        return ("organisation", "name", "key_prefix", "is_active", "created_at", "last_used_at")

    def get_readonly_fields(self, request: HttpRequest, obj: PartnerCredential | None = None) -> list[str]:
        if obj is None:
            return []
        return ["organisation", "key_prefix", "created_at", "last_used_at"]

    def save_model(self, request: HttpRequest, obj: PartnerCredential, form: Any, change: bool) -> None:
        if change:
            super().save_model(request, obj, form, change)
            return
        new = key_new()
        obj.key_prefix, obj.key_hash = new.prefix, new.hash
        super().save_model(request, obj, form, change)
        messages.warning(
            request,
            f"The key for {obj.name} is {new.key} — copy it now into the partner's system. It is shown only "
            "this once and cannot be recovered; if it is lost, withdraw this credential and create another.",
        )

    def has_delete_permission(self, request: HttpRequest, obj: PartnerCredential | None = None) -> bool:
        # Batches and attempts refer to it; withdraw a key instead.
        return False

    @admin.action(description="Withdraw the selected keys (they stop working at once)")
    def withdraw(self, request: HttpRequest, queryset: QuerySet[PartnerCredential]) -> None:
        count = 0
        for credential in queryset.filter(is_active=True):
            # One save each, so django-auditlog records who withdrew which key.
            credential.is_active = False
            credential.save(update_fields=["is_active"])
            count += 1
        self.message_user(request, f"Withdrew {count} key(s).")


@admin.register(PushedBatch)
class PushedBatchAdmin(FeedSupportAdmin[PushedBatch]):
    list_display = (
        "public_id",
        "feed",
        "credential",
        "status",
        "content_type",
        "size",
        "received_at",
        "ingest_run",
    )
    list_filter = ("status", "feed")
    search_fields = ("=public_id", "=checksum")
    list_select_related = ("feed", "credential", "ingest_run__feed")
    date_hierarchy = "received_at"
    fields = (
        "public_id",
        "feed",
        "credential",
        "status",
        "content_type",
        "size",
        "checksum",
        "received_at",
        "ingest_run",
        "error",
    )
    masked_fields = ("error",)
    actions = ("process_again",)

    def feed_partner(self, obj: PushedBatch) -> Organisation | None:
        return obj.feed.organisation

    def get_queryset(self, request: HttpRequest) -> QuerySet[PushedBatch]:
        return super().get_queryset(request).defer("payload")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: PushedBatch | None = None) -> bool:
        return False

    @admin.action(description="Process the selected failed batches again")
    def process_again(self, request: HttpRequest, queryset: QuerySet[PushedBatch]) -> None:
        ids = pushed_batches_requeue(list(queryset.values_list("pk", flat=True)))
        for batch_id in ids:
            transaction.on_commit(partial(pushed_batch_process_task.delay, batch_id))
        self.message_user(request, f"Queued {len(ids)} failed batch(es) to be processed again.")


@admin.register(PushAttempt)
class PushAttemptAdmin(admin.ModelAdmin[PushAttempt]):
    list_display = (
        "occurred_at",
        "feed_code",
        "outcome",
        "status_code",
        "credential",
        "key_prefix",
        "content_type",
        "size",
        "client_address",
    )
    list_filter = ("outcome", "status_code", "feed_code")
    search_fields = ("=feed_code", "=key_prefix", "=request_id")
    list_select_related = ("credential",)
    date_hierarchy = "occurred_at"

    def get_readonly_fields(self, request: HttpRequest, obj: PushAttempt | None = None) -> list[str]:
        return [field.name for field in PushAttempt._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: PushAttempt | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: PushAttempt | None = None) -> bool:
        return False
