"""Back office for quarantined records: find, inspect, replay after a fix, or discard with a reason.

What a partner sent is patient data, so this admin goes through the door: the list holds only the records of
partners the user supports (`records.access.feed_support_partners`), the search by NHS number is audited
(`feed_support_search`), and a record's page is opened, and its payload and detail revealed, through
`FeedSupportAdmin`.
"""

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.contrib.auth.base_user import AbstractBaseUser
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.html import format_html
from django.utils.text import Truncator

from records import nhs_number
from records.access import feed_support_partners, feed_support_search
from records.backoffice.support import FeedSupportAdmin
from records.ingest.quarantine import (
    DISCARD_REASON_REQUIRED,
    QuarantineReplayResult,
    quarantine_discard,
    quarantine_replay,
)
from records.models import IngestRun, Organisation, QuarantinedRecord
from records.tasks import arrived_patients_replay_enqueue, quarantine_replay_task

# Up to this many records are replayed while the administrator waits, so the page can say at once what happened
# to each; one run of fifty resources takes a second or two. More goes to a worker rather than hold a web process.
REPLAY_IN_REQUEST_LIMIT = 50
# The POST field of the quarantine list's "find by NHS number" form. NHS numbers never go in a URL (DESIGN §9), so
# this search is a POST, not the list's GET search box.
NHS_NUMBER_SEARCH_FIELD = "nhs_number_search"


class QuarantineDiscardForm(forms.Form):
    reason = forms.CharField(
        label="Why are these records being discarded?",
        widget=forms.Textarea(attrs={"rows": 4, "cols": 70}),
        max_length=2000,
        help_text="Kept with each record and in the change log. A discarded record is never replayed.",
        error_messages={"required": DISCARD_REASON_REQUIRED},
    )


def nhs_number_searched(request: HttpRequest) -> str | None:
    """The NHS number a POSTed "find by NHS number" asked for (normalised), or None when this is not one."""
    if request.method != "POST" or NHS_NUMBER_SEARCH_FIELD not in request.POST:
        return None
    if helpers.ACTION_CHECKBOX_NAME in request.POST:
        return None
    return nhs_number.normalise(request.POST[NHS_NUMBER_SEARCH_FIELD])


def _is_ten_digits(number: str) -> bool:
    return len(number) == 10 and number.isascii() and number.isdigit()


@admin.register(QuarantinedRecord)
class QuarantinedRecordAdmin(FeedSupportAdmin[QuarantinedRecord]):
    list_display = (
        "created_at",
        "feed",
        "reason",
        "resource_type",
        "source_id",
        "location",
        "status",
        "outcome",
    )
    list_filter = ("feed", "reason", "status", ("created_at", admin.DateFieldListFilter))
    # By NHS number: the POST form above the list (see NHS_NUMBER_SEARCH_FIELD), never the GET search box.
    search_fields = ("=source_id", "detail", "location")
    search_help_text = "Source id (exact), or words of the detail or location."
    list_select_related = ("feed", "discarded_by")
    actions = ("replay_selected", "discard_selected")
    change_list_template = "admin/records/quarantinedrecord/change_list.html"
    # The payload is on the detail page only, masked until revealed.
    fields = (
        "feed",
        "ingest_run",
        "reason",
        "detail",
        "resource_type",
        "source_id",
        "nhs_number",
        "patient_reference",
        "location",
        "status",
        "created_at",
        "replayed_by",
        "discarded_reason",
        "discarded_by",
        "closed_at",
        "raw_payload",
    )
    # The validation detail can quote the payload it found wanting.
    masked_fields = ("detail", "raw_payload")

    def feed_partner(self, obj: QuarantinedRecord) -> Organisation | None:
        return obj.feed.organisation

    def nhs_number_of(self, obj: QuarantinedRecord) -> str:
        return obj.nhs_number

    @admin.display(description="Outcome")
    def outcome(self, record: QuarantinedRecord) -> str:
        if record.status == QuarantinedRecord.Status.REPLAYED and record.replayed_by_id:
            url = reverse("admin:records_ingestrun_change", args=[record.replayed_by_id])
            return format_html('Replayed by <a href="{}">run {}</a>', url, record.replayed_by_id)
        if record.status == QuarantinedRecord.Status.DISCARDED:
            who = record.discarded_by.get_username() if record.discarded_by else "unknown"
            return format_html("Discarded by {}: {}", who, Truncator(record.discarded_reason).chars(100))
        return "—"

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: QuarantinedRecord | None = None) -> bool:
        return False

    def get_queryset(self, request: HttpRequest) -> QuerySet[QuarantinedRecord]:
        records = (
            super().get_queryset(request).filter(feed__organisation__in=feed_support_partners(request.user))
        )
        number = nhs_number_searched(request)
        if number is None:
            return records
        return records.filter(nhs_number=number) if _is_ten_digits(number) else records.none()

    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        number = nhs_number_searched(request)
        if number is not None:
            if not _is_ten_digits(number):
                self.message_user(request, "An NHS number has 10 digits.", messages.ERROR)
            elif not feed_support_search(user=request.user, request=request, nhs_number_text=number).exists():
                self.message_user(request, "You support no partner's feeds, so the search finds nothing.")
        context = {
            **(extra_context or {}),
            "nhs_number_search_field": NHS_NUMBER_SEARCH_FIELD,
            "nhs_number_searched": nhs_number.display(number) if number else "",
        }
        return super().changelist_view(request, context)

    @admin.action(description="Replay selected quarantined records")
    def replay_selected(self, request: HttpRequest, queryset: QuerySet[QuarantinedRecord]) -> None:
        ids = list(queryset.order_by("pk").values_list("pk", flat=True))
        user_id = request.user.pk
        if len(ids) > REPLAY_IN_REQUEST_LIMIT:
            transaction.on_commit(lambda: quarantine_replay_task.delay(ids, user_id=user_id))
            self.message_user(
                request,
                f"Replay of {len(ids)} records queued. Each feed's replay run will appear under ingest runs; "
                "records still bad will be back in this list as new pending records.",
                messages.INFO,
            )
            return
        result = quarantine_replay(ids, user_id=user_id)
        arrived_patients_replay_enqueue(result.runs)
        for text, level in _replay_messages(result):
            self.message_user(request, text, level)

    @admin.action(description="Discard selected quarantined records…")
    def discard_selected(
        self, request: HttpRequest, queryset: QuerySet[QuarantinedRecord]
    ) -> TemplateResponse | None:
        if "confirm" in request.POST:
            form = QuarantineDiscardForm(request.POST)
            if form.is_valid():
                selected = list(queryset.values_list("pk", flat=True))
                discarded = quarantine_discard(
                    selected, user=_signed_in(request), reason=form.cleaned_data["reason"]
                )
                self.message_user(request, f"Discarded {_records(len(discarded))}.", messages.SUCCESS)
                if len(discarded) < len(selected):
                    self.message_user(
                        request,
                        f"Left {_records(len(selected) - len(discarded))} as they were: only pending records "
                        "are discarded.",
                        messages.WARNING,
                    )
                return None
        else:
            form = QuarantineDiscardForm()
        records = list(queryset.select_related("feed").order_by("pk"))
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": "Discard quarantined records",
            "form": form,
            "pending": [record for record in records if record.status == QuarantinedRecord.Status.PENDING],
            "not_pending": [
                record for record in records if record.status != QuarantinedRecord.Status.PENDING
            ],
            "selected_ids": [record.pk for record in records],
            "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
            "action_name": "discard_selected",
            "media": self.media + form.media,
        }
        return TemplateResponse(request, "admin/records/quarantinedrecord/discard_confirmation.html", context)


def _signed_in(request: HttpRequest) -> AbstractBaseUser:
    # The admin site lets only signed-in staff this far; an anonymous user here is a bug, so refuse.
    if not isinstance(request.user, AbstractBaseUser):
        raise PermissionDenied
    return request.user


def _records(count: int) -> str:
    return f"{count} quarantined record{'' if count == 1 else 's'}"


def _replay_messages(result: QuarantineReplayResult) -> list[tuple[str, int]]:
    """What the administrator is told after a replay in the request: one line per run, then what was skipped."""
    lines: list[tuple[str, int]] = []
    for run in result.runs:
        url = reverse("admin:records_ingestrun_change", args=[run.pk])
        if run.status == IngestRun.Status.FAILED:
            # The run's error can quote the payload: it is on the run's page, masked until revealed.
            text: str = format_html(
                'Replay <a href="{}">run {}</a> of {} failed (its page has the error); its records are pending '
                "again.",
                url,
                run.pk,
                run.feed.code,
            )
            lines.append((text, messages.ERROR))
            continue
        ingested = run.resources_read - run.quarantined
        text = format_html(
            'Replay <a href="{}">run {}</a> of {}: {} ingested, {} quarantined again (pending in this list).',
            url,
            run.pk,
            run.feed.code,
            ingested,
            run.quarantined,
        )
        lines.append((text, messages.WARNING if run.quarantined else messages.SUCCESS))
    if result.skipped_ids:
        lines.append(
            (
                f"Skipped {_records(len(result.skipped_ids))}: only pending records are replayed.",
                messages.WARNING,
            )
        )
    return lines
