-- Erasure: every row of {target} (a staging or landing table of persons) whose person_key is tombstoned.
delete from {target}
where person_key in (
    select tombstones.person_key from staging.tombstones as tombstones
    where tombstones.key_fingerprint = :key_fingerprint
)
