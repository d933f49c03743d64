"""Django's admin looks for `records.admin`; the back office itself lives in `records/backoffice/`, by concern.

Patients and record entries are deliberately not in the admin: being staff or superuser opens no clinical data.
"""

from records.backoffice import change_log, credentials, partners, quarantine

__all__ = ["change_log", "credentials", "partners", "quarantine"]
