"""The repository's shared fixtures (tiny model, example records), for the OpenSearch adapter's own tests."""

from tests.conftest import *  # noqa: F403 (fixtures are found by name)
