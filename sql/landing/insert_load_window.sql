insert into landing.load_windows (
    window_key, window_kind, window_start, window_end, status, run_id, persons, started_at, finished_at
)
values (
    :window_key, :window_kind, :window_start, :window_end, :status, :run_id, :persons, :started_at,
    :finished_at
)
