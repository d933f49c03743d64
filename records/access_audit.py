"""The door for the privacy officer's reading of the audit trail: every read of the trail about a patient is decided and
audited here."""
