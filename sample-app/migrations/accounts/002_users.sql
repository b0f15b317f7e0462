-- People, shared across tenants: one user can be a member of several tenants.
CREATE TABLE {{tables.users}} (
  id integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  email text NOT NULL,
  name text NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX users_email ON {{tables.users}} (lower(email));

CREATE TABLE {{tables.memberships}} (
  tenant_id text NOT NULL,
  user_id integer NOT NULL REFERENCES {{tables.users}} (id) ON DELETE CASCADE,
  role text NOT NULL DEFAULT 'member' CHECK (role IN ('owner', 'member')),
  PRIMARY KEY (tenant_id, user_id)
);
