select
    version,
    checksum
from landing.schema_change_history
