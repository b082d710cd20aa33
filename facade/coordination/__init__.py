"""System-wide coordination: deployments, workflows, system-wide backups."""
