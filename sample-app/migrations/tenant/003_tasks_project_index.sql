-- A file of its own: Citus refuses CREATE INDEX on a distributed table inside a file that holds
-- other statements too (it forwards the whole text to the worker as one prepared statement).
CREATE INDEX tasks_project ON {{tables.tasks}} (project_id);
