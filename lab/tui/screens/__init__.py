"""The lab's screens: the dashboard, one screen per experiment, help, and "too small"."""
