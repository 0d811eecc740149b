-- Why a pending landed file could not be rewritten yet: the error's type and step, never its text.
update landing.erasure_files
set problem = :problem
where
    landed_file = :landed_file
    and key_fingerprint = :key_fingerprint
    and status = 'pending'
