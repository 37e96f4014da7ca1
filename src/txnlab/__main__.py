"""Allow `python -m txnlab`."""

from txnlab.cli import main

main()
