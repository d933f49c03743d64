"""Ingestion: read partner files, validate, match the patient, map to record entries, upsert.

items           what every format is read into: the inputs of a run, resources as read, rejections, deletions
formats/        the partner formats, bytes -> items: FHIR JSON and XML (readers, xml_reader), CSV extracts through a
                feed's mapping (csv_mapping, csv_extract, csv_rows), HL7 v2 ADT (hl7v2, hl7v2_messages)
fhir            FHIR R4B validation and small helpers for reading FHIR JSON
matching        NHS numbers, and finding the patient a clinical resource is about
patients        Patient resources -> Patient rows (created, updated, or only cross-checked)
merges          retiring one patient record into another (Patient.link replaced-by, HL7 A40)
mapping         one clinical resource -> the fields of a RecordEntry (section, code, dates, summary, flags)
upsert          writing a batch of entries idempotently
pipeline        a whole run: the IngestRun, its lock and transaction, its outcome (`ingest_path`, `ingest_texts`)
ingestion       the run's two passes, deletions and counts (`Ingestion`)
patient_pass    the run's Patient resources: checked, applied, merged, and the index references resolve by
held            what the partner already holds: content held unchanged, the patients NHS numbers lead to
run_validation  the run's side of validation: its verdicts, its own or a worker's
validation_pool validation workers beside a run; validation_worker, what each worker does
rejections      what a run quarantines
tally           what a run counts
quarantine      replaying and discarding quarantined records
"""
