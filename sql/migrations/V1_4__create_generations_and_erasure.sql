-- Which key made every row (a fingerprint, never the key), and the generations of the published state.
alter table landing.persons add column if not exists key_fingerprint varchar;
alter table landing.quarantined_persons add column if not exists key_fingerprint varchar;
alter table landing.batches add column if not exists key_fingerprint varchar;
alter table landing.batches add column if not exists generation_id varchar;
alter table landing.batches add column if not exists requested integer;
alter table landing.batches add column if not exists rejection_reason varchar;
alter table staging.persons add column if not exists key_fingerprint varchar;
alter table staging.persons add column if not exists generation_id varchar;

-- One key and one reference date per generation; exactly one generation serves the published layers.
create table if not exists staging.generations (
    generation_id varchar not null,
    key_fingerprint varchar not null,
    reference_date date not null,
    policy_version varchar not null,
    status varchar not null,
    run_id varchar not null,
    created_at timestamp not null,
    switched_at timestamp
);

-- A generation being rebuilt (re-key, new reference date): staging.persons keeps serving until the switch.
create table if not exists staging.persons_rebuild (
    person_key varchar not null,
    gender varchar not null,
    age_group varchar not null,
    email_domain varchar not null,
    country varchar not null,
    country_code varchar not null,
    age_reference_date date not null,
    batch_id varchar not null,
    run_id varchar not null,
    first_merged_at timestamp not null,
    updated_at timestamp not null,
    key_fingerprint varchar,
    generation_id varchar
);

-- The pages every published batch was made of (what a rebuild replays; what a grown run need not fetch).
create table if not exists staging.published_batches (
    generation_id varchar not null,
    batch_id varchar not null,
    run_id varchar not null,
    page_query varchar not null,
    pages varchar not null,
    requested integer not null,
    received integer not null,
    quarantined integer not null,
    duplicates integer not null,
    forgotten integer not null,
    persons integer not null,
    published_at timestamp not null
);

-- Right to be forgotten: the pseudonymous key, which key made it, and when; nothing else.
create table if not exists staging.tombstones (
    person_key varchar not null,
    key_fingerprint varchar not null,
    forgotten_at timestamp not null
);

-- One audit row per erasure request: counts only.
create table if not exists landing.erasures (
    erasure_id varchar not null,
    generation_id varchar,
    key_fingerprint varchar not null,
    identities integer not null,
    persons_erased integer not null,
    staging_rows_removed integer not null,
    landing_rows_removed integer not null,
    quarantine_rows_removed integer not null,
    files_rewritten integer not null,
    requested_at timestamp not null,
    finished_at timestamp not null
);
