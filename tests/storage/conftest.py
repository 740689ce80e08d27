"""Tests of cvatflow.storage and the files behind it: object stores, artifact repositories, atomic writes.

Fixtures only these tests use go here; those of several folders are in tests/conftest.py, helpers in tests/.
"""
