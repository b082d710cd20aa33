"""Example services built on the shared library (run from the repository root)."""
