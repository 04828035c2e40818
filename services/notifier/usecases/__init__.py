"""The notifier's use cases, on small ports (`ports.py`) instead of a database session.

Each function takes a unit of work (or a factory of them, where a use case needs more than
one transaction) and the values it decides on; none imports SQLAlchemy. The SQL adapters
are in `services/notifier/adapters/`; the unit tests run every use case on in-memory fakes.
"""
