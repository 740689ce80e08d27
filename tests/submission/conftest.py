"""Tests of cvatflow.submission, the one path from a request to a run: entry points, values, output paths.

Fixtures only these tests use go here; those of several folders are in tests/conftest.py, helpers in tests/.
"""
