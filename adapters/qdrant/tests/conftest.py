"""The repository's shared fixtures (tiny model, real Qdrant engines), for the Qdrant adapter's own tests."""

from tests.conftest import *  # noqa: F403 (fixtures are found by name)
