{#- The layer names are part of the contract: a model's schema is its layer, not <target schema>_<layer>. -#}
{% macro generate_schema_name(custom_schema_name, node) -%}
    {{ (custom_schema_name or target.schema) | trim }}
{%- endmacro %}
