"""The tracker's use cases: functions over a unit of work (`ports.UnitOfWork`).

They decide with the pure rules in `domain/`, load and store through small repository
ports, and never touch SQL; `adapters/sql.py` implements the ports on Postgres and the unit
tests (`tests/unit/tracker/`) on plain objects. The caller owns the transaction.
"""
