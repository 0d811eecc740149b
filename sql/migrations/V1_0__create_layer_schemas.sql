-- The four warehouse layers; their names are part of the contract.
create schema if not exists landing;
create schema if not exists staging;
create schema if not exists transform;
create schema if not exists reporting;
