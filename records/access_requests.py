"""The door for subject access requests and national data opt-outs: every action that touches a patient is decided
and audited here."""
