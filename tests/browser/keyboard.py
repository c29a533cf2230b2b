"""Keyboard-only helpers for browser tests: reach an element with Tab alone, as a person would."""

from __future__ import annotations

from typing import Any


def tab_to(page: Any, selector: str, *, limit: int = 80) -> None:
    """Press Tab until the element matching ``selector`` has the focus (fails after ``limit``)."""
    for _ in range(limit):
        page.keyboard.press("Tab")
        if page.evaluate("(s) => document.activeElement?.matches(s) ?? false", selector):
            return
    raise AssertionError(f"Tab never reached {selector}")


def focused_text(page: Any) -> str:
    return str(page.evaluate("() => document.activeElement?.innerText ?? ''"))
