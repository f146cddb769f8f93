"""The case_copilot job kind."""
