-- The audit of every erasure still waiting for this file counts it as rewritten (before it stops waiting).
update landing.erasures
set files_rewritten = files_rewritten + 1
where erasure_id in (
    select files.erasure_id from landing.erasure_files as files
    where
        files.landed_file = :landed_file
        and files.key_fingerprint = :key_fingerprint
        and files.status = 'pending'
)
