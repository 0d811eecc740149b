{#- The pipeline's own tables (landing, staging, monitoring: the sources) get their descriptions in
    sources.yml as comments, like the models' persist_docs: run at the end of every dbt build (on-run-end).
    Written here, not by a migration (one SQL for both engines): no column-comment statement serves both,
    DuckDB takes only COMMENT ON COLUMN, on which the tests' Snowflake (fakesnow's server) fails (see
    snowflake__alter_column_comment). A view's columns on Snowflake are left out (Snowflake takes them only
    in CREATE VIEW); a source not in the warehouse is skipped. One statement call, then a commit: the
    catalog queries before it opened a transaction on DuckDB (commit is a no-op on Snowflake). -#}
{% macro persist_source_docs() -%}
    {%- if execute %}
        {%- set statements = [] %}
        {%- for source in graph.sources.values() %}
            {%- set relation = adapter.get_relation(source.database, source.schema, source.identifier) %}
            {%- if relation is not none %}
                {%- if source.description %}
                    {%- do statements.append(alter_relation_comment(relation, source.description)) %}
                {%- endif %}
                {%- if source.columns and not (target.type == 'snowflake' and relation.is_view) %}
                    {%- do statements.append(alter_column_comment(relation, source.columns)) %}
                {%- endif %}
            {%- endif %}
        {%- endfor %}
        {%- if statements | join('') | trim %}
            {%- call statement('persist_source_docs', auto_begin=true) %}
                {{ statements | join('\n') }}
            {%- endcall %}
            {%- do adapter.commit() %}
        {%- endif %}
    {%- endif %}
{%- endmacro %}
