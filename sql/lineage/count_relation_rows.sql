-- Rows a table or view of the layers holds (the identifier comes from the catalog, quoted by the code).
select count(*) as row_count
from {table}
