"""Text as HTML, shared by the HTML report (render/html.py) and its cycle drawings (render/cycles.py)."""

from __future__ import annotations

import html

from txnlab.control_pictures import LAYOUT, pictured


def escape(text: str) -> str:
    """Text as HTML text or attribute value, its control characters shown as pictures (a
    raw ESC or CR is not allowed in HTML and would hide what a value holds)."""
    return html.escape(pictured(text, keep=LAYOUT))
