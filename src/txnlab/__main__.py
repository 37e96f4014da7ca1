"""The entry point of the `txnlab` command and of `python -m txnlab`.

It installs the signal handlers first and only then imports the CLI (click, psycopg2,
the scenario loader: about half a second), so that Ctrl-C, SIGTERM or SIGHUP in that
first half second also ends with one line and exit 128+n instead of a traceback. A
signal is held back while psycopg2 is imported (a few tens of ms): its C module imports
`ssl` and discards any exception raised meanwhile, the signal's included.

Before this module runs, Python itself is starting (about 50 ms, including the `import
re` of pip's `txnlab` script): a signal then has Python's default effect (for Ctrl-C,
KeyboardInterrupt's traceback); nothing of txnlab's has started. A signal whose exception
the code it interrupted wrapped in another (see `signals.interruption`) ends it the same way.
"""

from __future__ import annotations

import sys

from txnlab import signals


def main() -> None:
    """Install the signal handlers, then run the CLI (`txnlab.cli.main`); never returns."""
    signals.install()
    try:
        with signals.deferred_signals():
            import psycopg2  # noqa: F401 - its C module would swallow a signal's exception
        from txnlab.cli import main as cli_main

        cli_main()
    except BaseException as exc:  # before the CLI's own handling began, or after it ended
        interrupted = signals.interruption(exc)  # a class defined while the CLI loads may wrap it
        if interrupted is None or isinstance(exc, SystemExit):
            raise
        signals.ignore_further()  # the exit code is chosen: Python's shutdown must not be interrupted
        try:
            sys.stderr.write(f"txnlab: interrupted by {signals.describe(interrupted.signum)}; nothing was left behind\n")
        except OSError:
            pass  # the terminal is gone (SIGHUP)
        sys.exit(signals.exit_code(interrupted.signum))


if __name__ == "__main__":
    main()
