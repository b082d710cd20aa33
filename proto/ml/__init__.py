"""Generated code for the aitrading.ml schemas (see proto/ml/*.proto)."""
