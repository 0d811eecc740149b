"""The validation gate: the Great Expectations suite that decides whether a batch may be merged."""
