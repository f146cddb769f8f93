"""The enrich job kind."""
