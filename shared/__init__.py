"""Central Hub's importable library: what every platform service shares with the hub.

Rules that the hub server and its clients must agree on (error codes, tier order,
tenant header names) live here once; the server imports them, never copies them.
"""
