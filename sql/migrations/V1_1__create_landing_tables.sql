-- Anonymised rows exactly as loaded, tagged with their batch and run; may hold duplicates.
create table if not exists landing.persons (
    person_key varchar not null,
    gender varchar,
    age_group varchar,
    email_domain varchar,
    country varchar,
    country_code varchar,
    age_reference_date date,
    batch_id varchar not null,
    run_id varchar not null,
    loaded_at timestamp not null
);

-- Records held back by anonymisation: the pseudonymous key, the reason and where to re-fetch them.
create table if not exists landing.quarantined_persons (
    person_key varchar not null,
    quarantine_reason varchar not null,
    page_number integer,
    record_index integer,
    page_seed bigint,
    batch_id varchar not null,
    run_id varchar not null,
    loaded_at timestamp not null
);

-- One row per batch and run: the audit trail of write-audit-publish.
create table if not exists landing.batches (
    run_id varchar not null,
    batch_id varchar not null,
    batch_index integer not null,
    status varchar not null,
    persons integer not null,
    quarantined integer not null,
    extracted integer not null,
    duplicates integer not null,
    landed_file varchar,
    failed_expectations varchar,
    data_docs varchar,
    loaded_at timestamp not null,
    validated_at timestamp,
    merged_at timestamp
);
