"""Synthetic demo data: partners, feeds and users, and FHIR bundles that are loaded through the real ingestion.

Nothing here is real: every patient, address, phone number and practice is invented, and NHS numbers come from
the 999 range that is never issued to people.
"""
