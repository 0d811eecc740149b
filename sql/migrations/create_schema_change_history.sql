-- Bootstrap, run before any versioned script: which migrations this warehouse has applied.
create schema if not exists landing;
create table if not exists landing.schema_change_history (
    version varchar not null,
    script varchar not null,
    checksum varchar not null,
    applied_at timestamp not null
);
