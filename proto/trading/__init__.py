"""Generated code for the aitrading.trading schemas (see proto/trading/*.proto)."""
