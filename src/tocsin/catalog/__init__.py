"""Notification types: their definitions, the built-in ones, and every node's copy of them."""
