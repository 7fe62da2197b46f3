"""Package data: one JSON message catalogue per language."""
