"""The demo's console email, readable: headers, then each text part decoded (Django's own
console backend prints the wire form, quoted-printable: "1=\\n00 mg", "=E2=80=94")."""

from __future__ import annotations

from email.message import EmailMessage as MimeMessage
from typing import Any

from django.core.mail.backends.console import EmailBackend as DjangoConsoleBackend


class EmailBackend(DjangoConsoleBackend):
    def write_message(self, message: Any) -> None:
        mime = message.message()
        for name, value in mime.items():
            if name.lower() != "content-transfer-encoding":
                self.stream.write(f"{name}: {value}\n")
        self.stream.write("\n")
        for part in mime.walk() if mime.is_multipart() else [mime]:
            if part.get_content_maintype() == "text":
                self.stream.write(_text_of(part).rstrip("\n") + "\n")
            elif not part.is_multipart():
                self.stream.write(
                    f"[attachment: {part.get_filename() or part.get_content_type()}]\n"
                )
        self.stream.write("-" * 79 + "\n")


def _text_of(part: Any) -> str:
    if isinstance(part, MimeMessage):
        return str(part.get_content())
    payload = part.get_payload(decode=True) or b""
    return payload.decode(part.get_content_charset() or "utf-8", errors="replace")
