"""The Faker API twin: a local server speaking the `/api/v2/persons` contract, for development and tests.

A tool, not part of the pipeline: it lives outside the `flows` package and is not installed in the image.
Its modules: `constants` (the contract and the data's shape), `faults` (what it can inject), `pools` (values
drawn once per locale), `records` (a page's records), `serialise` (pages straight to JSON bytes), `server`
(HTTP) and `cli` (`faker-twin`).
"""

from faker_twin.cli import add_twin_arguments, main, serve_from_args
from faker_twin.faults import TwinFaults
from faker_twin.pools import load_countries
from faker_twin.records import generate_page
from faker_twin.server import FakerTwin

__all__ = [
    "FakerTwin",
    "TwinFaults",
    "add_twin_arguments",
    "generate_page",
    "load_countries",
    "main",
    "serve_from_args",
]
