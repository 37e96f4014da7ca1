"""Stage 5 of the pipeline: turn timelines and verdicts into text, JSON, Markdown or HTML.

Renderers read `Timeline` and `Verdict` objects only; they never talk to a database.
"""

from txnlab.render.report import RunReport

__all__ = ["RunReport"]
