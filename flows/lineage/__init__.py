"""OpenLineage events of a run, with row counts: built here (`events`), emitted by `flows.run.openlineage`."""
