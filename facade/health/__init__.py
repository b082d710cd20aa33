"""Health: the active prober (elected replica) and the health answers."""
