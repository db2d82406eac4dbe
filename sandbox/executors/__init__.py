"""Executor backends; pick one with ``sandbox.get_executor()``."""
