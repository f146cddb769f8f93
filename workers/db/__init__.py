"""Database access: URL resolution, the embedded server and migrations."""
