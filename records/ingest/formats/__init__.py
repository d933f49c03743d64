"""The partner formats: each turns one input's bytes into the items every format yields (`records.ingest.items`).

readers         FHIR R4 JSON and NDJSON (and XML, through xml_reader); finding and reading a run's inputs
xml_reader      FHIR XML, read without ever loading a DTD or an entity
csv_mapping     a CSV feed's declared mapping: its schema and the one check of it
csv_extract     a council's CSV extract: lines, header and rows, each row an item
csv_rows        one CSV row -> its FHIR resource
hl7v2           HL7 v2 ADT messages -> FHIR Patient and Encounter resources (and merges)
hl7v2_messages  reading HL7 v2 messages out of a file
"""
