-- Every column of the layers' tables and views, in order: the schemas of the lineage datasets (names only).
-- A left join: the Snowflake test server (fakesnow) lists views' columns but not the views among its tables.
select
    layer_columns.table_schema,
    layer_columns.table_name,
    coalesce(layer_tables.table_type, 'VIEW') as table_type,
    layer_columns.column_name,
    layer_columns.data_type
from information_schema.columns as layer_columns
left join information_schema.tables as layer_tables
    on
        layer_columns.table_schema = layer_tables.table_schema
        and layer_columns.table_name = layer_tables.table_name
where lower(layer_columns.table_schema) in ('landing', 'staging', 'transform', 'analytics', 'reporting')
order by layer_columns.table_schema, layer_columns.table_name, layer_columns.ordinal_position
