"""Generated code for the aitrading.common schemas (see proto/common/*.proto)."""
