"""Outbound channels (email, and push later) and the outbox worker that drives them."""
