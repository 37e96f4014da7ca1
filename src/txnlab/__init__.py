"""txnlab: watch PostgreSQL transactions behave, step by step, on a real server."""

__version__ = "0.1.0"
