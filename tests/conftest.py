"""Shared test fixtures."""

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def corpora_dir():
    """The shared real-text corpora beside the repo (`../shared/corpora`)."""
    path = Path(__file__).resolve().parents[1].parent / "shared" / "corpora"
    assert path.is_dir(), f"expected the shared corpora at {path} (shared/ beside the repo)"
    return path
