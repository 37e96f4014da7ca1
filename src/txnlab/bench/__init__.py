"""The contention lab (`txnlab bench`): a scenario's workload run as a real concurrent load,
at each isolation level and client count, measured from the server's side, and the same SQL
run through pgbench beside it.

Stages, each a module:
- script: the pgbench custom-script subset a workload is written in (parse, evaluate);
- clients: the load generator, one process per client, with retries as pgbench does them;
- server_stats: what the server counted (pg_stat_database deltas) and the lock waits it saw;
- pgbench: the same workload through PostgreSQL's own pgbench, read back from its logs;
- run: one measured run per tool, level and client count, from a fresh copy of the data;
- model: the results (LoadResult), which the renderers read and nothing here formats.
"""
