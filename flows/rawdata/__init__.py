"""The raw-data side: Faker API client, page parsing, the raw-data worker process. Never imports Prefect."""
