"""Tests of cvatflow.datasets: export formats, archives, readers and their limits, fidelity, the CLI.

Fixtures only these tests use go here; those of several folders are in tests/conftest.py, helpers in tests/.
"""
