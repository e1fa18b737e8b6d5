"""The publish pipeline: each stage a small module taking ports as arguments."""
