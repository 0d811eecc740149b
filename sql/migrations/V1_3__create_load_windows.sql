-- The high-watermark: which extraction windows (days, birthday ranges) have been loaded, by which run.
create table if not exists landing.load_windows (
    window_key varchar not null,
    window_kind varchar not null,
    window_start date,
    window_end date,
    status varchar not null,
    run_id varchar not null,
    persons integer,
    started_at timestamp not null,
    finished_at timestamp
);
