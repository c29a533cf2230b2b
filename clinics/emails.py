"""The emails VetSync writes are templates: ``templates/emails/<name>.txt``."""

from __future__ import annotations

from typing import Any

from django.template.loader import render_to_string


def render_email(template: str, context: dict[str, Any]) -> tuple[str, str]:
    """Render templates/emails/<template>.txt: a "Subject: …" line, a blank line, the body."""
    text = render_to_string(f"emails/{template}.txt", context).lstrip()
    first, _, body = text.partition("\n")
    if not first.startswith("Subject:"):
        raise ValueError(f"emails/{template}.txt must start with a Subject: line")
    return first.removeprefix("Subject:").strip(), body.strip() + "\n"
