"""`txnlab drivers`: how each Python driver handles transactions, derived live on the server.

A stage of its own, in the pipeline's order: behaviours (the driver code a user would
write, one module per driver family: probes_*.py) -> the probe runner (bench.py: a scratch
database, the wire tap, the server's facts) -> the result model (model.py) -> renderers
(render.py: text, Markdown, JSON, an HTML section) that never touch the database.
"""
