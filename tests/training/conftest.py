"""Tests of cvatflow.training: data, sampler, evaluation, checkpoints, model state, each family on CPU.

Fixtures only these tests use go here; those of several folders are in tests/conftest.py, helpers in tests/.
"""
