-- Landed files still to rewrite without tombstoned keys, once each (several erasures may wait for one file).
select distinct
    landed_file,
    key_fingerprint
from landing.erasure_files
where status = 'pending'
order by landed_file, key_fingerprint
