"""Two test suites at once on one machine (two clones, CI beside a developer) must not share
an OS user or a server-wide role: one suite's teardown would remove what the other made."""

from __future__ import annotations

import subprocess
import sys

from conftest import PROJECT_ROOT

NAMES = """\
import sys
sys.path[:0] = ["tests", "tests/chaos"]
import conftest, test_server_security
print(test_server_security.INTRUDER, conftest.process_unique("txnlab_limited"))
"""


def names_in_a_new_process() -> list[str]:
    """The OS user and a role name that a fresh test process would make."""
    done = subprocess.run([sys.executable, "-c", NAMES], cwd=PROJECT_ROOT, capture_output=True, text=True,
                          timeout=60, check=True)
    return done.stdout.split()


def test_two_test_processes_name_their_os_user_and_roles_differently() -> None:
    first, second = names_in_a_new_process(), names_in_a_new_process()
    assert len(first) == len(second) == 2
    assert not set(first) & set(second)


def test_the_os_user_name_fits_useradds_32_characters() -> None:
    intruder, _ = names_in_a_new_process()
    assert intruder.startswith("txnlab_intruder_") and len(intruder) <= 32
