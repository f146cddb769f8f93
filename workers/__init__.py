"""Dragonfly enforcement engine: the worker fleet and its database."""

__version__ = "0.1.0"
