"""The Faker API twin: a local server speaking the `/api/v2/persons` contract, for development and tests.

A tool, not part of the pipeline: it lives outside the `flows` package and is not installed in the image.
"""

from faker_twin.server import add_twin_arguments, main, serve_from_args

__all__ = ["add_twin_arguments", "main", "serve_from_args"]
