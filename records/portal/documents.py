"""A document in the record (a letter, a discharge summary), opened through the door as its own audited action.

The page shows the document's text or its cleaned markup (`records.documents`); `?format=pdf` hands over its PDF
attachment, a separate audited open, as a file the browser may show but never run in this site's origin.
"""

import uuid

from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.utils.http import content_disposition_header
from django.views.decorators.http import require_http_methods

from records.access import PatientNotFound, role_choice_needed
from records.access_documents import document_open_for_user
from records.documents import Pdf

# The PDF loads nothing and, sandboxed, runs as an opaque origin: a script in it reaches nothing of this site.
PDF_POLICY = "default-src 'none'; object-src 'none'; frame-ancestors 'none'; sandbox"


def _pdf_response(pdf: Pdf) -> HttpResponse:
    response = HttpResponse(pdf.data, content_type="application/pdf")
    # Inline: the browser shows it. The name is letters, digits and hyphens (`records.documents.pdf_filename`).
    response["Content-Disposition"] = content_disposition_header(False, pdf.filename) or "inline"
    response["Content-Security-Policy"] = PDF_POLICY
    response["X-Content-Type-Options"] = "nosniff"
    response["Cache-Control"] = "no-store"
    return response


@login_required
@require_http_methods(["GET"])
def document_view(request: HttpRequest, public_id: uuid.UUID, entry_id: int) -> HttpResponse:
    if role_choice_needed(request.user):
        # Nothing opens until a user holding several roles has chosen one; then back here.
        return HttpResponseRedirect(f"{reverse('records:role-select')}?next={request.path}")
    as_pdf = request.GET.get("format") == "pdf"
    try:
        access = document_open_for_user(
            user=request.user, public_id=public_id, entry_id=entry_id, request=request, as_pdf=as_pdf
        )
    except PatientNotFound:
        raise Http404 from None
    document = access.content
    if as_pdf and document.content.pdf is not None:
        return _pdf_response(document.content.pdf)
    context = {
        "document": document,
        "decision": access.decision,
        "public_id": public_id,
        "entry_id": entry_id,
    }
    return render(request, "records/document.html", context)
