"""Indexes the privacy officer's reads of the trail go through, so a page reads the events it shows, not the trail.

Each leads with what a search names and goes on in the order the pages show (occurred_at, id), so a page is the top of
one index range and its count (capped at `records.access_console.EVENTS_COUNTED`) an index-only scan of at most that
many entries. Measured on a copy of the 100,000-patient bench population (300,000 events):
- `access_event_username_time`, `access_event_ods_time`: a search by username or organisation counted its events
  with a parallel sequential scan of the whole table (105 ms, 30,000 buffers, growing with the trail); now an index-only
  scan of the user's events (5.5 ms, 40 buffers), and the page of 50 reads 50 index entries.
- `access_event_patient_time`, `access_event_user_time` replace the single-column patient and user indexes: the access
  report and a patient search read a patient's events newest first without sorting them, the user timeline a user's
  days likewise.
- `access_event_refused_time` (outcome, where not allowed) and `access_event_rare_action_time` (action, where neither
  view-record nor search): a date-range search for denied events or a rare action walked the whole range through the
  time index, testing each event (the whole trail for a range of years: 440 ms here); now an index-only scan of the
  few events that match. Partial, so the common outcome and actions add nothing to them.

The table is append-only (UPDATE, DELETE and TRUNCATE are refused by triggers): creating an index fires none of them;
on the monthly-partitioned table (audit/partitions.py) PostgreSQL creates each index on every partition.
"""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("audit", "0008_search_limit_alert"),
    ]

    operations = [
        migrations.AddIndex(
            model_name="accessevent",
            index=models.Index(fields=["patient_id", "occurred_at", "id"], name="access_event_patient_time"),
        ),
        migrations.AddIndex(
            model_name="accessevent",
            index=models.Index(fields=["user_id", "occurred_at", "id"], name="access_event_user_time"),
        ),
        migrations.AddIndex(
            model_name="accessevent",
            index=models.Index(fields=["username", "occurred_at", "id"], name="access_event_username_time"),
        ),
        migrations.AddIndex(
            model_name="accessevent",
            index=models.Index(
                fields=["organisation_ods", "occurred_at", "id"], name="access_event_ods_time"
            ),
        ),
        migrations.AddIndex(
            model_name="accessevent",
            index=models.Index(
                condition=models.Q(("outcome", "allowed"), _negated=True),
                fields=["outcome", "occurred_at", "id"],
                name="access_event_refused_time",
            ),
        ),
        migrations.AddIndex(
            model_name="accessevent",
            index=models.Index(
                condition=models.Q(("action__in", ["view-record", "search"]), _negated=True),
                fields=["action", "occurred_at", "id"],
                name="access_event_rare_action_time",
            ),
        ),
        migrations.AlterField(
            model_name="accessevent",
            name="patient_id",
            field=models.BigIntegerField(blank=True, null=True),
        ),
        migrations.AlterField(
            model_name="accessevent",
            name="user_id",
            field=models.BigIntegerField(blank=True, null=True),
        ),
    ]
