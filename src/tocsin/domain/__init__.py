"""The core's vocabulary: plain data and errors, no I/O."""
