"""`txnlab specs`: PostgreSQL's isolation test suite run as pg_isolation_regress runs it.

discovery finds the specs and their expected outputs, compare matches an output against
them (alternatives included), lanes runs specs side by side in scratch databases of their
own, and report turns the results into text and JSON.
"""
