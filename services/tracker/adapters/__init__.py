"""Implementations of the use cases' ports (`usecases.ports`) on Postgres."""
