"""The command line: the parser and one module per command group."""
from lab.cli.parser import main

__all__ = ["main"]
