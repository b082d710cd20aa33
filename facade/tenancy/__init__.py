"""Tenants, layered configuration, quotas and config webhooks."""
