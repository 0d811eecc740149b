-- A pending landed file holds no tombstoned key any more (rewritten, or gone): no erasure waits for it.
update landing.erasure_files
set
    status = 'rewritten',
    problem = null,
    rewritten_at = :rewritten_at
where
    landed_file = :landed_file
    and key_fingerprint = :key_fingerprint
    and status = 'pending'
