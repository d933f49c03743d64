"""The door for the IG team's objection cases: every action that touches a patient is decided and audited here."""
