"""Telemetry store(s), monitoring, alerts, forecasting and services' error groups."""
