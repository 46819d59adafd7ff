"""Fixtures for the qdrant adapter's tests: the kit's tiny real models and example records."""

from splare_connect.testing.fixtures import *  # noqa: F403 (fixtures are found by name)
