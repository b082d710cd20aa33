"""Tier circuit breakers (pybreaker), their shared state in the backend."""
