"""The records domain: partners and feeds, patients and their entries, and the bookkeeping of ingestion.

Split by concept; everything is importable from `records.models` as before.
"""

from records.models.ingestion import IngestRun, PushAttempt, PushedBatch, QuarantinedRecord
from records.models.partners import Feed, Organisation, PartnerCredential, ods_code_validator
from records.models.patients import PartnerPatientId, Patient, RecordEntry

__all__ = [
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
]
