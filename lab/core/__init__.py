"""The headless engine and store: no textual, no rich, no widgets."""
