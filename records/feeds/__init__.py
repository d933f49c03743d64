"""Scheduled partner feeds: which feeds are due, one run at a time, and their sources (inbox folder, HTTP pull)."""
