"""Durable jobs: deliveries and every later piece of work that is due at a time."""
