-- The fifth layer's schema (dbt creates it too) and the record of dbt builds: a run rebuilds the models
-- only when their fingerprint differs from the last successful build's.
create schema if not exists analytics;

create table if not exists landing.model_builds (
    fingerprint varchar not null,
    k_anonymity integer not null,
    status varchar not null,
    run_id varchar not null,
    models integer not null,
    tests integer not null,
    seconds double not null,
    built_at timestamp not null
);
