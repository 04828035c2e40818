"""Escalation: the policy, the pure planning engine, contacts and message rendering."""
