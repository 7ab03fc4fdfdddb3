"""Fixtures shared by the unit tests."""

import pytest
import torch


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """The test models are tiny: they gain nothing from several threads, and on a busy machine
    the extra threads spin-wait for a CPU and make them many times slower."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
