"""Rate limits: how often something may happen, counted atomically."""
