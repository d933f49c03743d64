"""gunicorn's settings wherever sharedcare is served: `make run`, the Docker image and the benchmark all start it with
`-c python:sharedcare.gunicorn_conf`, so the three serve alike. The number of processes stays theirs to give
(`--workers`, or `WEB_CONCURRENCY` in the image); `GUNICORN_CMD_ARGS` and the command line override anything here.

Threaded workers, chosen by measurement (docs/scaling.md, "Choosing gunicorn's workers"): a record open spends part
of its time waiting on PostgreSQL, its reads and then the commit of its audit row, which waits for the WAL to reach
the disk, and a sync worker's process sits idle through every such wait. At 1,000,000 patients on two shared cores,
16 users: 2 sync workers served 30 and 33 record opens a second, 3 sync workers 29, 2 threaded workers of 4 threads
49 and 62. Each thread has its own database connection, and nothing a request keeps outlives it (the door's
per-request cache hangs on the request's own user object), so threads share no request's data.
"""

import os

# How the three name this module to gunicorn (an upper-case name is not one of gunicorn's settings, which it ignores).
CONFIG = "python:sharedcare.gunicorn_conf"

worker_class = "gthread"
threads = int(os.environ.get("GUNICORN_THREADS", "4"))
