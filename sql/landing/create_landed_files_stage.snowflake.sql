-- sqlfluff:dialect:snowflake
-- Snowflake: the internal stage that landed files are PUT to before COPY INTO.
create stage if not exists landing.landed_files
