-- Right to be forgotten: only the pseudonymous key, which key made it, and when.
insert into staging.tombstones (person_key, key_fingerprint, forgotten_at)
select
    cast(:person_key as varchar) as person_key,
    cast(:key_fingerprint as varchar) as key_fingerprint,
    cast(:forgotten_at as timestamp) as forgotten_at
where not exists (
    select 1 from staging.tombstones as tombstones
    where tombstones.person_key = :person_key and tombstones.key_fingerprint = :key_fingerprint
)
