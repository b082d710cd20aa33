"""Who may do what: tokens and roles, the audit log, rate limits on the hub's API."""
