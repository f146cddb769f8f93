"""The outreach job kind."""
