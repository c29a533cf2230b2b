"""(in progress this session: the clinic's prescription, request, order and WriteBack pages)"""

from __future__ import annotations

from django.http import Http404, HttpRequest, HttpResponse


def _todo(request: HttpRequest, *args: object, **kwargs: object) -> HttpResponse:
    raise Http404


prescription_list = prescription_new = prescription_detail = prescription_action = _todo
rx_request_list = rx_request_detail = order_list = order_new = order_detail = order_action = _todo
