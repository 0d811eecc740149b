-- One row per person_key; changed only by merging a validated batch.
create table if not exists staging.persons (
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
    updated_at timestamp not null
);
