"""Topics: named audiences, and the fan-out of a publish to one."""
