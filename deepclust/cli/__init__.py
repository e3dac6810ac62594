"""The ``deepclust`` command."""

from deepclust.cli._main import main

__all__ = ["main"]
