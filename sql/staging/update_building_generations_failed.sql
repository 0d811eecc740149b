-- A rebuild that never switched over (failed, crashed) is abandoned: its rows never served.
update staging.generations
set status = 'failed'
where status = 'building'
