"""Tests of cvatflow.models: `cvatflow model` and the adapters' registry.

Fixtures only these tests use go here; those of several folders are in tests/conftest.py, helpers in tests/.
"""
