-- Persons of the published state that the tombstones name: published, or quarantined and unpublished.
select count(distinct named.person_key) as persons
from (
    select person_key from staging.persons
    union all
    select person_key from transform.quarantined
) as named
where named.person_key in (
    select tombstones.person_key from staging.tombstones as tombstones
    where tombstones.key_fingerprint = :key_fingerprint
)
