"""Tests of cvatflow.templates and params: the engine, validation, Argo compatibility, distributed templates.

Fixtures only these tests use go here; those of several folders are in tests/conftest.py, helpers in tests/.
"""
