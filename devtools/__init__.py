"""Development tooling: never installed, never in the image.

`make run` (`python -m devtools.local_stack`), the tests and the benchmark import it from the
repository root. The runtime packages (`shared`, `services`) must not import it: the wheel
the Dockerfile installs leaves it out (pyproject.toml, [tool.setuptools.packages.find]).

- servers.py: an embedded Postgres and a Tansu broker, the real parts for development and tests
- local_stack.py: `make run`, the whole system on those parts
- demo_traffic.py and demo/: the demo catalog and a year of demo reports for `make run`
"""
