"""Tests of the Helm chart in charts/cvatflow: lint, rendered objects, RBAC, the CRD, the optional CVAT agent.

Fixtures only these tests use go here; those of several folders are in tests/conftest.py, helpers in tests/.
"""
