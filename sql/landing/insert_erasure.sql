-- The audit of one erasure request: counts only, never a key or a value.
insert into landing.erasures (
    erasure_id, generation_id, key_fingerprint, identities, persons_erased, staging_rows_removed,
    landing_rows_removed, quarantine_rows_removed, files_rewritten, requested_at, finished_at
)
values (
    :erasure_id, :generation_id, :key_fingerprint, :identities, :persons_erased, :staging_rows_removed,
    :landing_rows_removed, :quarantine_rows_removed, :files_rewritten, :requested_at, :finished_at
)
