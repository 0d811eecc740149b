{#- persist_docs on Snowflake for the columns of a table (seeds, and the pipeline's own tables through
    persist_source_docs; a view's column comments can only be part of its CREATE VIEW, which dbt-snowflake
    writes itself): one ALTER TABLE ... ALTER COLUMN ... COMMENT per described column. dbt-snowflake's own
    statement lists every column in one ALTER, which fakesnow (the tests' Snowflake) cannot parse, and
    COMMENT ON COLUMN fails on fakesnow's server; both engines accept this form. Quoting as dbt-snowflake's
    ($$, a $ written as [$]). -#}
{% macro snowflake__alter_column_comment(relation, column_dict) -%}
    {%- set existing_columns = adapter.get_columns_in_relation(relation) | map(attribute="name") | list %}
    {%- for column_name in existing_columns %}
        {%- set described = column_dict.get(column_name | lower) or column_dict.get(column_name) %}
        {%- if described and described.get('description') %}
    alter table {{ relation.render() }} alter column {{ adapter.quote(column_name) }}
        comment $${{ described['description'] | replace('$', '[$]') }}$$;
        {%- endif %}
    {%- endfor %}
{%- endmacro %}
