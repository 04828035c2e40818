"""Implementations of the use cases' ports (`usecases/ports.py`): `sql` on Postgres."""
