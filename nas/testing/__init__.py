"""Shared test-case classes: subclass them in ``tests/`` and provide the fixtures they name."""
