"""Indexes the feed monitor reads through, so that its cost follows what it shows, not every run ever recorded.

- `ingest_run_feed_newest` (feed, started_at DESC, id DESC): each feed's last run was found by sorting all of that
  feed's runs (a bitmap scan of the feed's runs and a top-N sort, once per feed: 2.4 s for 116 feeds of a year's
  hourly runs); with it, one index row per feed (Limit over an Index Scan).
- `ingest_run_started` (started_at): the error rates (last 7 days) and the chart (last 14 days) grouped every run
  after a sequential scan of the whole table; with it, a range scan of those days' runs only.
- `quarantine_pending_feed` (feed) where pending: counting the records waiting per feed read every quarantined
  record, replayed and discarded included; with it, only the pending ones.
"""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("records", "0009_patient_birth_date_index"),
    ]

    operations = [
        migrations.AddIndex(
            model_name="ingestrun",
            index=models.Index(fields=["feed", "-started_at", "-id"], name="ingest_run_feed_newest"),
        ),
        migrations.AddIndex(
            model_name="ingestrun",
            index=models.Index(fields=["started_at"], name="ingest_run_started"),
        ),
        migrations.AddIndex(
            model_name="quarantinedrecord",
            index=models.Index(
                condition=models.Q(("status", "pending")), fields=["feed"], name="quarantine_pending_feed"
            ),
        ),
    ]
