"""Ingestion: read partner files, validate, match the patient, map to record entries, upsert.

readers      bytes -> FHIR resources (JSON, NDJSON, XML; Bundles opened, DELETEs noted), or a rejection saying why
csv_mapping  a CSV feed's declared mapping: its schema and the one check of it
csv_extract  CSV extract rows -> FHIR resources through the feed's mapping
hl7v2        HL7 v2 ADT messages -> FHIR Patient and Encounter resources (and merges)
fhir         FHIR R4B validation and small helpers for reading FHIR JSON
matching     NHS numbers, and finding the patient a clinical resource is about
patients     Patient resources -> Patient rows (created, updated, or only cross-checked)
merges       retiring one patient record into another (Patient.link replaced-by, HL7 A40)
mapping      one clinical resource -> the fields of a RecordEntry (section, code, dates, summary, flags)
upsert       writing a batch of entries idempotently
pipeline     a whole run: the IngestRun, the two passes, deletions, the counts (`ingest_path`, `ingest_texts`)
"""
