"""Format-specific parsers: responsibility table, inline clauses, district plan, five-year plan."""
