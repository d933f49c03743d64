"""FHIR R4 ingestion: read partner files, validate, match the patient, map to record entries, upsert.

readers   bytes -> resources (JSON, NDJSON, XML; Bundles opened), or a rejection saying why not
fhir      FHIR R4B validation and small helpers for reading FHIR JSON
matching  NHS numbers, and finding the patient a clinical resource is about
patients  Patient resources -> Patient rows (created, updated, or only cross-checked)
mapping   one clinical resource -> the fields of a RecordEntry (section, code, dates, summary, flags)
upsert    writing a batch of entries idempotently
pipeline  a whole run: the IngestRun, the two passes, the counts (`ingest_path`, `ingest_texts`)
"""
