"""Helpers for testing posefw plugins, and the pytest plugin plugin authors use."""
