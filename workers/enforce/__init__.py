"""The enforce job kind."""
