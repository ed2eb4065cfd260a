"""conlab: the application (CLI, runner, sampler, state, Textual app)."""

__version__ = "0.1.0"
