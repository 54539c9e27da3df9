"""Katib-compatible hyperparameter tuning in one process."""
