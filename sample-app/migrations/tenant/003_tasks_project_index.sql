-- Alone in its file: Citus forwards a CREATE INDEX on a distributed table to the workers with the
-- whole text of the query it came in, and a worker refuses a text of several statements.
CREATE INDEX tasks_project ON {{tables.tasks}} (project_id);
