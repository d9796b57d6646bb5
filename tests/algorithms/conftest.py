"""Shared fixtures of the algorithm tests."""

import jax
import pytest


@pytest.fixture
def x64():
    """Run the test body with 64-bit JAX (for finite differences); restored afterwards."""
    with jax.enable_x64(True):
        yield
