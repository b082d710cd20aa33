"""Generated code for the aitrading.business schemas (see proto/business/*.proto)."""
