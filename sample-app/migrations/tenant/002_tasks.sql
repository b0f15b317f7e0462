CREATE TABLE {{tables.tasks}} (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  project_id bigint NOT NULL REFERENCES {{tables.projects}} (id) ON DELETE CASCADE,
  title text NOT NULL,
  done boolean NOT NULL DEFAULT false,
  -- A user in the shared accounts schema; the app checks membership (no cross-schema foreign
  -- key, so a tenant's schema stays self-contained, and Citus can place it on any worker).
  assignee_id integer,
  created_at timestamptz NOT NULL DEFAULT now()
);
