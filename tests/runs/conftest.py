"""Tests of cvatflow.runs: the Kubernetes and Argo Server backends, waiting on and listing runs.

Fixtures only these tests use go here; those of several folders are in tests/conftest.py, helpers in tests/.
"""
