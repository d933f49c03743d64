"""Back office for quarantined records: find, inspect, replay after a fix, or discard with a reason, in bulk from
the list or one at a time from the record's page (where the payload can also be corrected, checked and replayed).

What a partner sent is patient data, so this admin goes through the door: the list holds only the records of
partners the user supports (`records.access.feed_support_partners`), the search by NHS number is audited
(`feed_support_search`), and a record's page is opened, and its payload and detail revealed, through
`FeedSupportAdmin`.
"""

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseNotAllowed, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html
from django.utils.text import Truncator

from audit.models import AccessEvent
from records import nhs_number
from records.access import feed_support_partners, feed_support_search
from records.backoffice.quarantine_fix import QuarantineFixForm, quarantine_payload_fix
from records.backoffice.support import FeedSupportAdmin, signed_in_user
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
    # No search_help_text: Django ties it to the box by aria-describedby, and axe then finds the box named by its
    # help alone (its label is an icon). The template says the same in words beside the box.
    list_select_related = ("feed", "discarded_by")
    actions = ("replay_selected", "discard_selected")
    change_list_template = "admin/records/quarantinedrecord/change_list.html"
    change_form_template = "admin/records/quarantinedrecord/change_form.html"
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
        "outcome",
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

    def get_urls(self) -> list[URLPattern]:
        wrap = self.admin_site.admin_view
        own = [
            path("<path:object_id>/replay/", wrap(self.replay_view), name="records_quarantinedrecord_replay"),
            path("<path:object_id>/fix/", wrap(self.fix_view), name="records_quarantinedrecord_fix"),
            path(
                "<path:object_id>/discard/", wrap(self.discard_view), name="records_quarantinedrecord_discard"
            ),
        ]
        return [*own, *super().get_urls()]

    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        context = {**(extra_context or {}), "discard_form": QuarantineDiscardForm(auto_id="id_discard_%s")}
        return super().change_view(request, object_id, form_url, context)

    def _record_to_act_on(
        self, request: HttpRequest, object_id: str, action: str
    ) -> QuarantinedRecord | None:
        """The record, if the door opens it to this user for `action` (audited either way); else None."""
        if not self.has_change_permission(request):
            raise PermissionDenied
        record = self._unfiltered(object_id)
        if record is None or not self._open(request, record, action):
            return None
        return record

    def _back_to(self, record: QuarantinedRecord) -> HttpResponseRedirect:
        return HttpResponseRedirect(reverse("admin:records_quarantinedrecord_change", args=[record.pk]))

    def replay_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """Replay one record as it is (after its patient arrived, or its feed's mapping was put right)."""
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        record = self._record_to_act_on(request, object_id, AccessEvent.Action.VIEW_DOCUMENT)
        if record is None:
            return self._as_missing(request, object_id)
        self._replay_and_tell(request, record)
        return self._back_to(record)

    def fix_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """What the partner sent, in a textarea to correct: check it, or save it and replay it through the pipeline.

        Showing the payload is a reveal, so every step of this page asks the door for one and is audited.
        """
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        record = self._record_to_act_on(request, object_id, AccessEvent.Action.REVEAL)
        if record is None:
            return self._as_missing(request, object_id)
        if record.status != QuarantinedRecord.Status.PENDING:
            self.message_user(request, "Only a pending record can be fixed and replayed.", messages.WARNING)
            return self._back_to(record)
        form = QuarantineFixForm(request.POST if "payload" in request.POST else None, record=record)
        checked = None
        if form.is_valid():
            checked = form.checked
            if "_replay" in request.POST and not form.problems:
                if form.payload_changed:
                    quarantine_payload_fix(record, form.cleaned_data["payload"])
                    self.message_user(request, "Saved the corrected payload.", messages.INFO)
                self._replay_and_tell(request, record)
                return self._back_to(record)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "original": record,
            "title": f"Fix and replay quarantined record {record.pk}",
            "form": form,
            "checked": checked,
            "back_url": reverse("admin:records_quarantinedrecord_change", args=[record.pk]),
        }
        return TemplateResponse(request, "admin/records/quarantinedrecord/fix.html", context)

    def discard_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        record = self._record_to_act_on(request, object_id, AccessEvent.Action.VIEW_DOCUMENT)
        if record is None:
            return self._as_missing(request, object_id)
        form = QuarantineDiscardForm(request.POST)
        if not form.is_valid():
            self.message_user(request, DISCARD_REASON_REQUIRED, messages.ERROR)
            return self._back_to(record)
        if quarantine_discard([record.pk], user=signed_in_user(request), reason=form.cleaned_data["reason"]):
            self.message_user(request, f"Discarded quarantined record {record.pk}.", messages.SUCCESS)
        else:
            self.message_user(
                request, "Only a pending record can be discarded; this one is not.", messages.WARNING
            )
        return self._back_to(record)

    def _replay_and_tell(self, request: HttpRequest, record: QuarantinedRecord) -> None:
        result = quarantine_replay([record.pk], user_id=request.user.pk)
        arrived_patients_replay_enqueue(result.runs)
        for text, level in _replay_messages(result):
            self.message_user(request, text, level)
        for again in QuarantinedRecord.objects.filter(
            ingest_run__in=result.succeeded_runs, status=QuarantinedRecord.Status.PENDING
        ).order_by("pk"):
            url = reverse("admin:records_quarantinedrecord_change", args=[again.pk])
            text = format_html(
                'Still not ingested: <a href="{}">quarantined record {}</a>, {}.',
                url,
                again.pk,
                again.get_reason_display(),
            )
            self.message_user(request, text, messages.WARNING)

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
                    selected, user=signed_in_user(request), reason=form.cleaned_data["reason"]
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
