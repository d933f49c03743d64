"""The append-only, tamper-evident trail of every access to patient data.

`audit` knows nothing of the other apps: a patient is an id, a user is an id plus who they were at the time.
"""

import pgtrigger
from django.contrib.postgres.fields import ArrayField
from django.db import models
from django.utils import timezone


def _truncate_refused(name: str) -> pgtrigger.Trigger:
    """A statement trigger that refuses TRUNCATE, which row triggers never see."""
    return pgtrigger.Trigger(
        name=name,
        level=pgtrigger.Statement,
        when=pgtrigger.Before,
        operation=pgtrigger.Truncate,
        func="RAISE EXCEPTION 'pgtrigger: Cannot truncate the % table', TG_TABLE_NAME;",
    )


class AccessEvent(models.Model):
    class Action(models.TextChoices):
        SEARCH = "search", "Search"
        VIEW_RECORD = "view-record", "View record"
        VIEW_SECTION = "view-section", "View section"
        VIEW_DOCUMENT = "view-document", "View document"
        EXPORT = "export", "Export"
        DECLARE_RELATIONSHIP = "declare-relationship", "Declare relationship"
        BREAK_GLASS = "break-glass", "Break glass"
        # A self-claimed relationship or a break-glass grant ended early by its holder.
        END_GRANT = "end-grant", "End own access grant"
        READ_AUDIT = "read-audit", "Read audit"
        # Unmasking what a partner sent (a quarantined payload, an error text) in the back office.
        REVEAL = "reveal", "Reveal masked data"
        # The IG team matching a patient's objection or access request to a patient held here.
        MATCH_PATIENT = "match-patient", "Match a request to a patient"
        # A break-glass that sets an upheld objection aside: its own, louder event.
        OBJECTION_OVERRIDE = "objection-override", "Override an objection"

    class Outcome(models.TextChoices):
        ALLOWED = "allowed", "Allowed"
        DENIED = "denied", "Denied"
        NOT_FOUND = "not-found", "Not found"

    class Purpose(models.TextChoices):
        DIRECT_CARE = "direct-care", "Direct care"
        AUDIT = "audit", "Audit and investigation"
        FEED_SUPPORT = "feed-support", "Fixing a partner feed"
        PATIENTS_RIGHTS = "patients-rights", "A patient's objection or access request"

    occurred_at = models.DateTimeField(default=timezone.now, db_index=True)
    user_id = models.BigIntegerField(null=True, blank=True)
    username = models.CharField(max_length=150, blank=True)
    job_role = models.CharField(max_length=8, blank=True)
    organisation_ods = models.CharField(max_length=6, blank=True)
    patient_id = models.BigIntegerField(null=True, blank=True)
    # What was searched for, so an investigation can find searches that matched nobody.
    query = models.CharField(max_length=200, blank=True)
    action = models.CharField(max_length=32, choices=Action.choices)
    purpose = models.CharField(max_length=32, choices=Purpose.choices, default=Purpose.DIRECT_CARE)
    basis = models.CharField(max_length=200, blank=True)
    reason = models.TextField(blank=True)
    sections_shown = ArrayField(models.CharField(max_length=64), default=list, blank=True)
    partners_shown = ArrayField(models.CharField(max_length=6), default=list, blank=True)
    withheld = models.TextField(blank=True)
    outcome = models.CharField(max_length=16, choices=Outcome.choices)
    request_id = models.CharField(max_length=64, blank=True)
    client_address = models.GenericIPAddressField(null=True, blank=True)
    previous_hash = models.CharField(max_length=64)
    hash = models.CharField(max_length=64, unique=True)

    class Meta:
        ordering = ["-occurred_at", "-id"]
        # The trail is read by who or what it names, newest first (the access report, the audit console): each index
        # leads with what a search names, then the order the pages show, so a page (and its capped count) reads the
        # events it shows, never the whole trail. The rarer outcomes and actions are indexed alone, for a search of a
        # date range by outcome or action that few events match.
        indexes = [
            models.Index(fields=["patient_id", "occurred_at", "id"], name="access_event_patient_time"),
            models.Index(fields=["user_id", "occurred_at", "id"], name="access_event_user_time"),
            models.Index(fields=["username", "occurred_at", "id"], name="access_event_username_time"),
            models.Index(fields=["organisation_ods", "occurred_at", "id"], name="access_event_ods_time"),
            models.Index(
                fields=["outcome", "occurred_at", "id"],
                condition=~models.Q(outcome="allowed"),
                name="access_event_refused_time",
            ),
            models.Index(
                fields=["action", "occurred_at", "id"],
                condition=~models.Q(action__in=["view-record", "search"]),
                name="access_event_rare_action_time",
            ),
        ]
        triggers = [
            pgtrigger.Protect(name="access_event_append_only", operation=pgtrigger.Update | pgtrigger.Delete),
            _truncate_refused("access_event_no_truncate"),
        ]

    def __str__(self) -> str:
        return f"{self.get_action_display()} {self.get_outcome_display()} at {self.occurred_at:%Y-%m-%d %H:%M:%S}"


class AuditCheckpoint(models.Model):
    """An anchor of the access chain's head, so that removing the newest events is found.

    Always holds: a checkpoint is never changed or removed (triggers refuse UPDATE, DELETE and TRUNCATE); it records,
    at one moment, the id and hash of the newest event and the number of events up to it; its signature is an
    HMAC-SHA256 of those with AUDIT_ANCHOR_KEY, a key the database never sees (empty when no key was set); and the same
    values are written to the application log, outside the database.
    """

    created_at = models.DateTimeField()
    # 0 and the genesis hash when the chain was empty.
    last_event_id = models.BigIntegerField()
    event_count = models.BigIntegerField()
    head_hash = models.CharField(max_length=64)
    signature = models.CharField(max_length=64, blank=True)

    class Meta:
        ordering = ["-id"]
        triggers = [
            pgtrigger.Protect(
                name="audit_checkpoint_append_only", operation=pgtrigger.Update | pgtrigger.Delete
            ),
            _truncate_refused("audit_checkpoint_no_truncate"),
        ]

    def __str__(self) -> str:
        return f"Checkpoint {self.pk}: {self.event_count} events up to event {self.last_event_id}"


class Alert(models.Model):
    """Something a privacy officer must look at and decide on: a self-claimed relationship, a break-glass.

    The alert names a reference (the grant's), not the patient; the patient is reached from the review page, whose
    reading is itself audited. Reviewing is the only change an alert takes, and django-auditlog records it.
    """

    class Kind(models.TextChoices):
        SELF_CLAIM = "self-claim", "Self-claimed relationship"
        BREAK_GLASS = "break-glass", "Break-glass access"
        OBJECTION_OVERRIDE = "objection-override", "Objection overridden by break-glass"
        CASE_OVERDUE = "case-overdue", "Patient's request overdue"
        # Suspicious patterns, found by the scan of the trail after the fact (never on the read path).
        OWN_RECORD = "own-record", "User opened their own record"
        FAMILY_RECORD = "family-record", "User opened a record sharing their surname and address"
        UNUSUAL_VOLUME = "unusual-volume", "Far more patients in an hour than usual"
        OUT_OF_HOURS = "out-of-hours", "Out-of-hours access without a care relationship"
        RESTRICTED_PATIENT = "restricted-patient", "Restricted patient's record opened"
        FEED_RELATIONSHIP_RATE = "feed-relationship-rate", "A feed created relationships at an unusual rate"
        # Who may do what: a clinical role, organisation or care team given or changed, a password set for another
        # user, or a refused attempt to grant oneself any of these.
        ACCESS_ADMINISTRATION = "access-administration", "Access administration change"
        SELF_GRANT_REFUSED = "self-grant-refused", "Attempt to grant oneself access refused"
        # A partner's push that made the first relationship between that partner and a patient it never sent about.
        FIRST_CONTACT = "first-contact", "A partner's first data about a patient opened the record"
        # A user searched for more patients in an hour than PATIENT_SEARCHES_PER_HOUR allows; the rest were refused.
        SEARCH_LIMIT = "search-limit", "Patient searches past the hourly limit"

    class Outcome(models.TextChoices):
        APPROPRIATE = "appropriate", "Appropriate"
        INAPPROPRIATE = "inappropriate", "Inappropriate"
        REFERRED_ON = "referred-on", "Referred on"

    raised_at = models.DateTimeField(default=timezone.now, db_index=True)
    kind = models.CharField(max_length=32, choices=Kind.choices)
    reference = models.CharField(max_length=32)
    # Who raised it, as they were at the time.
    user_id = models.BigIntegerField(null=True, blank=True)
    username = models.CharField(max_length=150, blank=True)
    job_role = models.CharField(max_length=8, blank=True)
    organisation_ods = models.CharField(max_length=6, blank=True)
    patient_id = models.BigIntegerField(null=True, blank=True)
    reason = models.TextField(blank=True)
    event = models.ForeignKey(AccessEvent, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    reviewed_at = models.DateTimeField(null=True, blank=True)
    reviewed_by_id = models.BigIntegerField(null=True, blank=True)
    reviewed_by_username = models.CharField(max_length=150, blank=True)
    outcome = models.CharField(max_length=16, choices=Outcome.choices, blank=True)
    review_note = models.TextField(blank=True)

    class Meta:
        ordering = ["-raised_at", "-id"]
        indexes = [models.Index(fields=["reviewed_at", "-raised_at"], name="alert_review_queue")]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} {self.reference}"

    @property
    def is_open(self) -> bool:
        return self.reviewed_at is None


class AlertScan(models.Model):
    """How far the scan for suspicious patterns has read the trail: one row per rule.

    Always holds: `last_event_id` only grows; every event up to it has been judged by the rule once. Events are
    numbered under the chain's lock, which is held to commit, so no event below the mark can appear later.
    """

    rule = models.CharField(max_length=32, unique=True)
    last_event_id = models.BigIntegerField(default=0)
    scanned_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"{self.rule} scanned to event {self.last_event_id}"


class AuditPurge(models.Model):
    """A record that the events up to one point, all past their retention, were removed, and how to go on from there.

    Always holds: a purge is never changed or removed (triggers refuse UPDATE, DELETE and TRUNCATE); it records the
    newest event removed (its id and hash) and how many events the chain held up to it, so the first remaining event
    must link to `head_hash` and counting goes on from `event_count`; `signature` is an HMAC-SHA256 of those with
    AUDIT_ANCHOR_KEY, as a checkpoint's is.
    """

    created_at = models.DateTimeField()
    # Every event before this moment was past its retention when it was removed.
    retained_from = models.DateTimeField()
    last_event_id = models.BigIntegerField()
    event_count = models.BigIntegerField()
    head_hash = models.CharField(max_length=64)
    removed_count = models.BigIntegerField()
    signature = models.CharField(max_length=64, blank=True)

    class Meta:
        ordering = ["-id"]
        triggers = [
            pgtrigger.Protect(name="audit_purge_append_only", operation=pgtrigger.Update | pgtrigger.Delete),
            _truncate_refused("audit_purge_no_truncate"),
        ]

    def __str__(self) -> str:
        return f"Purge {self.pk}: {self.removed_count} events up to event {self.last_event_id}"


class AccessDayCount(models.Model):
    """How many accesses were allowed and denied on one finished day (a calendar day in the site's time zone), counted
    once from the trail and kept for the audit console's chart (`audit.day_counts`).

    Derived data, not part of the trail: no trigger ties it to the events, so nothing here can fail an append; it may
    be removed and is counted again from the events when missing. Always holds: a day is kept only once it is over and
    settled, its counts then equal a count of its events, and a day keeps one row (`day` is unique).
    """

    day = models.DateField(unique=True)
    allowed = models.BigIntegerField()
    denied = models.BigIntegerField()
    counted_at = models.DateTimeField()

    class Meta:
        ordering = ["day"]

    def __str__(self) -> str:
        return f"{self.day}: {self.allowed} allowed, {self.denied} denied"
