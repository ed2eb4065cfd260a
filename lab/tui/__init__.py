"""The Textual application: the app, its screens and the live glue."""
