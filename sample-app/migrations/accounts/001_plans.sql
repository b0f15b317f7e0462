-- Billing plans and which plan each tenant is on. Shared by all tenants: a named schema.
CREATE TABLE {{tables.plans}} (
  id text PRIMARY KEY,
  name text NOT NULL,
  max_projects integer CHECK (max_projects > 0) -- NULL: unlimited
);

INSERT INTO {{tables.plans}} (id, name, max_projects) VALUES
  ('free', 'Free', 3),
  ('team', 'Team', 50),
  ('enterprise', 'Enterprise', NULL);

CREATE TABLE {{tables.subscriptions}} (
  tenant_id text PRIMARY KEY,
  plan_id text NOT NULL REFERENCES {{tables.plans}} (id),
  started_at timestamptz NOT NULL DEFAULT now()
);
