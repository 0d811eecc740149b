-- The last window of a kind that was loaded completely (the next run continues after it).
select max(window_end) as high_watermark
from landing.load_windows
where window_kind = :window_kind and status = 'completed'
