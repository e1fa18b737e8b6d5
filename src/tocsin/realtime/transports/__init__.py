"""Codecs: one per transport, each turning a connection's output into that transport's frames."""
