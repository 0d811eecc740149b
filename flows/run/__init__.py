"""One run of the pipeline: the flow, its context and ledger, its tasks, the batch loop, the publication and
the end of the run."""
