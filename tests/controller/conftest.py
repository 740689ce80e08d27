"""Tests of cvatflow.controller, the operator: its handlers, under kopf and kmock, conflicts, node pools.

Fixtures only these tests use go here; those of several folders are in tests/conftest.py, helpers in tests/.
"""
