"""Django's admin looks for `records.admin`; the back office itself lives in `records/backoffice/`, by concern.

Patients and record entries are deliberately not in the admin: being staff or superuser opens no clinical data.
"""

from django.contrib import admin

from records.backoffice import change_log, credentials, feeds, partners, quarantine

__all__ = ["change_log", "credentials", "feeds", "partners", "quarantine"]

admin.site.site_header = "sharedcare back office"
admin.site.site_title = "sharedcare back office"
admin.site.index_title = "Partners, feeds, users and the audit"
