"""Textual widgets that draw measurements. No workload code, no subprocesses."""
