select count(*) as tombstoned_rows
from {target}
where person_key in (
    select tombstones.person_key from staging.tombstones as tombstones
    where tombstones.key_fingerprint = :key_fingerprint
)
