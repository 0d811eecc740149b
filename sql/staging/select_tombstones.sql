select person_key
from staging.tombstones
where key_fingerprint = :key_fingerprint
