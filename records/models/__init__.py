"""The records domain: partners and feeds, patients and their entries, and the bookkeeping of ingestion.

Split by concept; everything is importable from `records.models` as before.
"""

from records.models.ingestion import IngestRun, PushAttempt, PushedBatch, QuarantinedRecord
from records.models.partners import Feed, Organisation, PartnerCredential, ods_code_validator
from records.models.patients import MAX_MERGE_HOPS, PartnerPatientId, Patient, RecordEntry, patient_survivor

__all__ = [
    "MAX_MERGE_HOPS",
    "Feed",
    "IngestRun",
    "Organisation",
    "PartnerCredential",
    "PartnerPatientId",
    "Patient",
    "PushAttempt",
    "PushedBatch",
    "QuarantinedRecord",
    "RecordEntry",
    "ods_code_validator",
    "patient_survivor",
]
