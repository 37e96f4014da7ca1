"""`txnlab bench`'s renderers: the results of a contention run (txnlab.bench.model.LoadResult)
as text, JSON, Markdown, an HTML page and a chart (matplotlib), one module each.

Like every renderer they read results only and never talk to the database. `table` holds
what the text, Markdown and HTML tables share: the columns, the cells, the footnotes.
"""

from txnlab.render.bench.report import BenchReport

__all__ = ["BenchReport"]
