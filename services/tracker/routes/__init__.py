"""HTTP routes of the tracker, one module per area."""
