"""Endpoint selection: tenant-aware lookup, load balancing, the circuit state callers see."""
