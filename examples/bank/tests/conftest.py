import pytest

import bank.naive
import bank.transfer


def pytest_addoption(parser):
    parser.addoption("--transfer", choices=["fixed", "naive"], default="fixed",
                     help="Which transfer() to test: the fixed one (default) or the naive first version.")


@pytest.fixture
def transfer(request):
    """The transfer function under test."""
    return bank.naive.transfer if request.config.getoption("--transfer") == "naive" else bank.transfer.transfer
