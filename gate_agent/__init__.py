"""gate_agent package."""
