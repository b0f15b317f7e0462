-- Owned by AuditModule (DatabaseModule.forFeature): it could ship in a package of its own.
CREATE TABLE {{tables.events}} (
  id integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  at timestamptz NOT NULL DEFAULT now(),
  action text NOT NULL,
  tenant_id text,
  detail jsonb NOT NULL DEFAULT '{}'
);
