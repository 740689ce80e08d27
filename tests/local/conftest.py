"""Tests of cvatflow.local, the local executor: the DAG, retries, phases, logs and stop.

Fixtures only these tests use go here; those of several folders are in tests/conftest.py, helpers in tests/.
"""
