-- bigint ids: on Citus, a default that the worker holding the tenant evaluates (INSERT … SELECT)
-- takes its value from a per-node bigint range; an integer sequence has none there.
CREATE TABLE {{tables.projects}} (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  name text NOT NULL,
  description text NOT NULL DEFAULT '',
  created_at timestamptz NOT NULL DEFAULT now()
);
