"""Tests of the CVAT side: cvatflow.cvat (the client), cvat_function, serverless and auto_annotate.

Fixtures only these tests use go here; those of several folders are in tests/conftest.py, helpers in tests/.
"""
