"""Control characters made visible: a value, a message or a scenario's text must not ring,
move the cursor, colour or hide text on a presenter's terminal, in a Markdown file or on a
web page, and must not look like other text once stripped.

Each C0 control becomes its picture from Unicode's Control Pictures block (U+2400 + code:
ESC as ␛, BEL as ␇, TAB as ␉), DEL becomes ␡, and a C1 control (U+0080 to U+009F) becomes
the replacement character �.
"""

from __future__ import annotations

import re

CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
LAYOUT = "\t\n"  # whitespace that lays out text a reader wrote (SQL, prose), kept where asked


def picture(char: str) -> str:
    """The visible stand-in for one control character."""
    code = ord(char)
    if code < 0x20:
        return chr(0x2400 + code)
    return "␡" if code == 0x7F else "�"


def pictured(text: str, *, keep: str = "") -> str:
    """`text` with every control character but those in `keep` replaced by its picture."""
    return CONTROL.sub(lambda m: m.group() if m.group() in keep else picture(m.group()), text)
