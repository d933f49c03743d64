"""One patient's record as a single chronological timeline across sections, through the door.

The timeline shows what the record page would show for the same decision, no more: it is opened through
`records.access_timeline` and built by `records.portal.timeline_selectors`. A patient who does not exist and one
this user may not see get the same 404.
"""

import uuid
from functools import partial

from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.http import require_http_methods

from records.access import PatientNotFound, RecordWithheld, role_choice_needed
from records.access_timeline import patient_timeline_open
from records.portal.timeline_selectors import timeline_build


@login_required
@require_http_methods(["GET"])
def patient_timeline(request: HttpRequest, public_id: uuid.UUID) -> HttpResponse:
    if role_choice_needed(request.user):
        return HttpResponseRedirect(f"{reverse('records:role-select')}?next={request.path}")
    build = partial(timeline_build, query=request.GET)
    try:
        access = patient_timeline_open(user=request.user, public_id=public_id, request=request, build=build)
    except RecordWithheld:
        # Told plainly, as on the record page; any break-glass is offered from the record page after a search.
        context = {"public_id": public_id, "break_glass_offered": False}
        return render(request, "records/record_withheld.html", context, status=403)
    except PatientNotFound:
        raise Http404 from None
    context = {"timeline": access.content, "decision": access.decision, "public_id": public_id}
    return render(request, "records/timeline.html", context)
