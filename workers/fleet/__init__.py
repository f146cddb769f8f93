"""``dragonfly up``: the whole fleet in one command.

- ``procfile``: the Procfile (one ``name: command`` line per process type);
- ``supervisor``: runs one child per line, restarts crashed ones with capped
  backoff, and stops them all cleanly on SIGINT/SIGTERM.
"""
