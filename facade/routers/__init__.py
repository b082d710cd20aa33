"""Thin HTTP, one module per API area: parse, call a domain service, shape the answer."""
