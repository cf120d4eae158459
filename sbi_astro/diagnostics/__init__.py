"""Calibration and dynamics diagnostics."""
