-- When a batch was last merged into staging (any run): the freshness of the published layers.
select max(merged_at) as last_merged_at
from landing.batches
where status = 'merged'
