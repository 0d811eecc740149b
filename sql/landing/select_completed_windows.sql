select distinct window_key
from landing.load_windows
where window_kind = :window_kind and status = 'completed'
