"""Helpers shared by tests: plain functions and classes (fixtures live in tests/conftest.py only)."""
