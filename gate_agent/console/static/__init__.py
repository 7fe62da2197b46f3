"""Package data: the console page, its script and style sheet (no external assets)."""
