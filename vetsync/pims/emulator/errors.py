"""The error a request handler raises to answer with ezyVet's ``messages`` body."""

from __future__ import annotations


class ApiError(Exception):
    """Answered as ``{"messages": [{"level": "error", "type", "text", "fields"}]}``."""

    def __init__(
        self,
        status: int,
        text: str,
        *,
        kind: str = "InvalidRequestException",
        fields: tuple[str, ...] = (),
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(text)
        self.status = status
        self.text = text
        self.kind = kind
        self.fields = fields
        self.headers = headers or {}

    def body(self) -> dict[str, object]:
        return {
            "messages": [
                {
                    "level": "error",
                    "type": self.kind,
                    "text": self.text,
                    "fields": list(self.fields),
                }
            ]
        }
