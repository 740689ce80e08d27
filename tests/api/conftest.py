"""Tests of cvatflow.api: HTTP routes, webhooks, the Onepanel fork's endpoints, auth, fuzzed JSON endpoints.

Fixtures only these tests use go here; those of several folders are in tests/conftest.py, helpers in tests/.
"""
