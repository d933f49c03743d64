"""Embedded PostgreSQL and Redis for `make run`, `make test` and commands beside a running instance.

    python -m sharedcare.embedded run [--profile run]          # what `make run` does
    python -m sharedcare.embedded exec [--profile test] -- CMD  # CMD with the profile's services

Each profile keeps its data under `.data/<profile>/`. What always holds:

- A service named in the environment (DATABASE_URL, REDIS_URL) is used as it is; nothing is started for it.
- The launcher that starts a profile's services owns them: it writes their addresses to
  `.data/<profile>/services.json` (atomically, under the profile's lock) and, when it ends, stops them and removes
  the file. Any other launcher of that profile attaches to them instead: it reads the file, checks that its owner is
  alive and the services answer, and only puts their addresses in the command's environment.
- No launcher stops a service it did not start (or adopt from an owner that died without stopping it).
- `run` stops, on Ctrl-C or SIGTERM, the web server, worker and beat first, then Redis, then PostgreSQL.

This package is a developer launcher: it imports nothing from Django.
"""
