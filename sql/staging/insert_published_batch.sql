-- The pages a published batch was made of, and its counts (requested = received for a complete batch).
insert into staging.published_batches (
    generation_id, batch_id, run_id, page_query, pages, requested, received, quarantined, duplicates,
    forgotten, persons, published_at
)
values (
    :generation_id, :batch_id, :run_id, :page_query, :pages, :requested, :received, :quarantined,
    :duplicates, :forgotten, :persons, :published_at
)
