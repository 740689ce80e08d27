"""Tests of the project as a whole: README, public surface, CLI config, CI skips, bench, images, bad input.

Fixtures only these tests use go here; those of several folders are in tests/conftest.py, helpers in tests/.
"""
