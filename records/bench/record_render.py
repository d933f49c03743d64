"""The Python cost of opening one record page, in this process: `python -m records.bench.record_render`.

Loads the demo once (if the database has no demo users yet), picks the patient the demo GP may open who has the
most entries, and opens their record page N times through Django's test client with the GP's own session (every
middleware, the door, the decision, the audit row, the template). It prints the median, fastest and slowest open
and, with `--profile`, cProfile's top functions by cumulative and by own time over the same opens. For comparing
two versions of the page's code on the same machine and data; it is not the ICS-scale benchmark
(`records.bench.read`).
"""

from __future__ import annotations

import argparse
import cProfile
import io
import logging
import os
import pstats
import statistics
import sys
import time

DEMO_USER = "gp.ada"


def _patient_url() -> tuple[object, str]:
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.db.models import Count
    from django.test import Client
    from django.urls import reverse
    from django.utils import timezone

    from records.models import Patient

    user = get_user_model().objects.filter(username=DEMO_USER).first()
    if user is None:
        os.environ.setdefault("DEMO_PASSWORD", "bench-only-password-1")
        call_command(
            "demo_load",
            "--patients",
            "30",
            "--reference-date",
            timezone.localdate().isoformat(),
            stdout=io.StringIO(),
        )
        user = get_user_model().objects.get(username=DEMO_USER)
    patients = Patient.objects.filter(merged_into__isnull=True).annotate(size=Count("entries"))
    for patient in patients.order_by("-size", "nhs_number")[:20]:
        url = reverse("records:patient-detail", kwargs={"public_id": patient.public_id})
        client = Client(HTTP_HOST="127.0.0.1")
        client.force_login(user)
        if client.get(url).status_code == 200:
            print(f"patient with {patient.size} entries", file=sys.stderr)
            return client, url
    raise SystemExit(f"{DEMO_USER} may open none of the largest records")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--opens", type=int, default=30)
    parser.add_argument("--profile", action="store_true", help="print cProfile's top 25 twice")
    parser.add_argument("--dump", help="also write the profile here, for pstats")
    args = parser.parse_args(argv)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "sharedcare.settings")
    # As served: no debug (which keeps every query and template frame), and the test client's host allowed.
    os.environ["DEBUG"] = "false"
    os.environ["ALLOWED_HOSTS"] = "127.0.0.1"
    import django

    django.setup()
    logging.disable(logging.INFO)
    client, url = _patient_url()
    for _ in range(3):  # warm: templates compiled, connections open
        client.get(url)  # type: ignore[attr-defined]
    profiler = cProfile.Profile() if args.profile else None
    times = []
    cpu = []
    for _ in range(args.opens):
        started = time.perf_counter()
        cpu_started = time.process_time()
        if profiler:
            profiler.enable()
        response = client.get(url)  # type: ignore[attr-defined]
        if profiler:
            profiler.disable()
        times.append(time.perf_counter() - started)
        cpu.append(time.process_time() - cpu_started)
        if response.status_code != 200:
            raise SystemExit(f"opened with {response.status_code}")
    print(
        f"record page: median {statistics.median(times) * 1000:.1f} ms, "
        f"min {min(times) * 1000:.1f}, max {max(times) * 1000:.1f} over {args.opens} opens; "
        f"{len(response.content)} bytes"
    )
    # This process's own CPU time: the Python cost, without the wait on PostgreSQL or on a busy machine's others.
    print(f"record page CPU: median {statistics.median(cpu) * 1000:.1f} ms, min {min(cpu) * 1000:.1f}")
    if profiler and args.dump:
        profiler.dump_stats(args.dump)
    if profiler:
        for order in ("cumulative", "tottime"):
            print(f"\n--- top 25 by {order}")
            pstats.Stats(profiler).sort_stats(order).print_stats(25)


if __name__ == "__main__":
    main()
