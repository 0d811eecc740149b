select count(*) as persons
from {target}
