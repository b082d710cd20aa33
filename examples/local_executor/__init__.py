"""A small deployment executor that replaces local processes (docs/deployments.md)."""
