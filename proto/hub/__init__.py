"""Generated code for the aitrading.hub schemas (see proto/hub/*.proto)."""
