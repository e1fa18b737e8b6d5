"""Test support: real services, real processes, and the checks many tests share."""
