"""Partners push batches to the API: their keys (`keys`), receiving a batch (`receive`), and processing it on the
worker (`process`).

What always holds:
- a key is shown once, when it is made; only its sha256 and its first characters are stored;
- every push attempt, accepted or refused, leaves exactly one PushAttempt saying who tried, into which feed, with
  what, and the answer they got;
- an accepted batch is stored whole (bytes, size, sha256) in the same transaction as its attempt, before the
  partner hears 202, and its payload is never dropped, whatever becomes of its ingestion;
- a body is never read past PUSH_MAX_BYTES (plus one byte, to know it is too large);
- one worker at a time processes a batch, and processing it again changes nothing.
"""
