"""Agents read JSON: every error under /api/ (a 404 of an unknown path, a 405, a 413, a 500)
answers JSON with a message, never Django's HTML pages."""

from __future__ import annotations

from collections.abc import Callable
from http import HTTPStatus

from django.http import HttpRequest, HttpResponse, JsonResponse

from vetsync.lib.rates import RateLimited

API_PREFIX = "/api/"
KEPT_HEADERS = ("Allow", "Retry-After", "WWW-Authenticate")
MESSAGES = {
    400: "The request could not be read.",
    404: "No such endpoint, or nothing with this id for this clinic.",
    405: "This endpoint does not take this method.",
    413: "The body is bigger than this endpoint accepts.",
    500: "VetSync failed on its side; nothing was applied. Try again later.",
}


class ApiJsonErrorsMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if isinstance(exception, RateLimited):
            response = JsonResponse({"error": str(exception)}, status=429)
            response["Retry-After"] = str(exception.retry_after)
            return response
        return None

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if (
            not request.path.startswith(API_PREFIX)
            or response.status_code < 400
            or response.get("Content-Type", "").startswith("application/json")
        ):
            return response
        status = response.status_code
        message = MESSAGES.get(status) or _phrase(status)
        own = _plain_text(response)
        if own:
            message = own
        if status == 405 and response.has_header("Allow"):
            message = f"{message} Allowed: {response['Allow']}."
        json_response = JsonResponse({"error": message}, status=status)
        for header in KEPT_HEADERS:
            if response.has_header(header):
                json_response[header] = response[header]
        return json_response


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase + "."
    except ValueError:
        return "The request failed."


def _plain_text(response: HttpResponse) -> str:
    """A short plain-text reason a door already gave (not a page), kept as the message."""
    if not response.get("Content-Type", "").startswith("text/plain") or response.streaming:
        return ""
    text = response.content.decode("utf-8", "replace").strip()
    return text if 0 < len(text) <= 300 else ""
