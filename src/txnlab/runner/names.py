"""Server texts in the scenario's terms: without txnlab's run schema, with backends named.

Every run happens in a schema of its own (`txnlab_run_64ae55_2`, see `schemas`), which the
scenario never mentions; the server names it where an object is not on the search path
(`cannot refresh materialized view "txnlab_run_64ae55_2.mv" concurrently`, the CONTEXT of a
function with `SET search_path`). The runner takes it out of every error, notice and
failure message before anyone sees them. Only that exact schema name is taken out: a
user's own schema, however similar its name, is left as it is.

Backend pids ("Process 812 waits for ShareLock on transaction 771; blocked by process 815.")
are not rewritten: the error records who each pid is, and renderers say it.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping

from txnlab.timeline import BACKEND_PID, ErrorInfo

RUN_SCHEMA = "the run's schema"  # what a bare mention of the schema becomes


def unqualified(text: str, schema: str | None) -> str:
    """`text` with `schema.` taken off the names it qualifies, and a bare mention of the
    schema itself (`permission denied for schema ...`) called "the run's schema"."""
    if not schema or schema not in text:
        return text
    name = re.escape(schema)
    text = re.sub(rf'(?<![\w$])("?){name}\1\.', "", text)
    return re.sub(rf'(?<![\w$])("?){name}\1(?![\w$])', RUN_SCHEMA, text)


def readable_error(info: ErrorInfo, schema: str | None, backends: Mapping[int, str]) -> ErrorInfo:
    """`info` without the run schema in its texts, knowing which of `backends` (pid -> who:
    "session a", a pool connection's label) its texts name."""

    def clean(text: str | None) -> str | None:
        return unqualified(text, schema) if text else text

    named = {int(m.group(2)) for text in info.texts() if text for m in BACKEND_PID.finditer(text)}
    return dataclasses.replace(
        info,
        message=unqualified(info.message, schema),
        detail=clean(info.detail),
        hint=clean(info.hint),
        context=clean(info.context),
        backends=tuple(sorted((pid, backends[pid]) for pid in named if pid in backends)),
    )
