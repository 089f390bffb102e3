"""The base class of every error that is the user's to fix: the CLI prints its message as one line, exit 2."""

from __future__ import annotations


class UserError(Exception):
    """A mistake in the configuration or input (a flag, a file, a kubeconfig, a port); the message says which."""
