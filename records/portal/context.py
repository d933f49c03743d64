"""What every portal page's frame shows: the role the user acts under, the privacy officer's link to the alert
queue, and the banner of break-glass access in force.

Computed only when a template reads it (the back office's pages never do), and it names no patient: the banner shows
break-glass grants by reference and end time.
"""

from typing import Any

from django.http import HttpRequest
from django.utils.functional import SimpleLazyObject

from records.access import portal_frame_for_user
from records.access_objections import works_objections


def portal_frame(request: HttpRequest) -> dict[str, Any]:
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {}
    return {
        "frame": SimpleLazyObject(lambda: portal_frame_for_user(user)),
        "works_objections": SimpleLazyObject(lambda: works_objections(user)),
    }
