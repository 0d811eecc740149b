-- The landed files an erasure must rewrite without the tombstoned keys: noted in the erasure's transaction,
-- rewritten after it (by `forget`, and at the start of every run while one is pending). A file's name, which
-- key's tombstones apply, and a one-line problem (an error's type and step): never a key or a value.
create table if not exists landing.erasure_files (
    erasure_id varchar not null,
    landed_file varchar not null,
    key_fingerprint varchar not null,
    status varchar not null,
    problem varchar,
    noted_at timestamp not null,
    rewritten_at timestamp
);
