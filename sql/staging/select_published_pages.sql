-- Every batch of a generation with its pages (JSON), oldest first.
select
    batch_id,
    page_query,
    pages
from staging.published_batches
where generation_id = :generation_id
order by published_at, batch_id
