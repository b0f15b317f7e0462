import { findCitusConflicts } from '../../../../lib/tenancy/citus/citus-migration-check.js';

const find = (sql: string) => findCitusConflicts({ sql });

describe('findCitusConflicts: what Citus refuses in a tenant migration file', () => {
  it('finds index DDL and forwarded ALTER TABLE subcommands that share a file with others', () => {
    expect(
      find(`CREATE TABLE {{tables.tasks}} (id bigint PRIMARY KEY, project_id bigint);
            CREATE INDEX tasks_project ON {{tables.tasks}} (project_id);`).multiStatementDdl,
    ).toBe('CREATE INDEX');
    expect(find('select 1; create unique index u on {{tables.t}} (a)').multiStatementDdl).toBe(
      'CREATE UNIQUE INDEX',
    );
    expect(find('DROP INDEX {{schema}}.u; SELECT 1').multiStatementDdl).toBe('DROP INDEX');
    expect(
      find(`ALTER TABLE {{tables.c}} ADD CONSTRAINT c_a FOREIGN KEY (a_id) REFERENCES {{tables.a}} (id);
            ALTER TABLE {{tables.c}} ADD COLUMN x int;`).multiStatementDdl,
    ).toBe('ALTER TABLE … ADD CONSTRAINT');
    expect(
      find(`ALTER TABLE IF EXISTS ONLY {{schema}}."Odd" ADD COLUMN q numeric(10, 2), DROP COLUMN j;
            SELECT 1`).multiStatementDdl,
    ).toBe('ALTER TABLE … DROP');
    expect(find('alter table {{tables.a}} rename to b; select 1').multiStatementDdl).toBe(
      'ALTER TABLE … RENAME',
    );
  });

  it('accepts index DDL alone in its file, and statements Citus runs together', () => {
    expect(find('CREATE INDEX t_a ON {{tables.t}} (a);').multiStatementDdl).toBeUndefined();
    expect(
      find(`-- CREATE INDEX in a comment; and another
            CREATE TABLE {{tables.a}} (id bigint PRIMARY KEY, note text DEFAULT 'CREATE INDEX x; y');
            CREATE TABLE {{tables.b}} (id bigint PRIMARY KEY, a_id bigint REFERENCES {{tables.a}} (id));
            ALTER TABLE {{tables.a}} ADD COLUMN z int DEFAULT 1, ADD UNIQUE (z), ADD CHECK (z > 0);
            ALTER TABLE {{tables.b}} ADD FOREIGN KEY (a_id) REFERENCES {{tables.a}} (id);
            ALTER TABLE {{tables.a}} ADD COLUMN "drop" int;
            CREATE FUNCTION {{schema}}.f() RETURNS int LANGUAGE sql AS $$ SELECT 1; CREATE INDEX $$;`)
        .multiStatementDdl,
    ).toBeUndefined();
  });

  it('lists schema-qualified REFERENCES targets outside the tenant, as written', () => {
    expect(
      find(`CREATE TABLE {{tables.tasks}} (
              id bigint PRIMARY KEY,
              project_id bigint REFERENCES {{tables.projects}} (id),
              owner_id bigint REFERENCES {{schema}}.owners,
              user_id int REFERENCES accounts.users (id),
              plan text REFERENCES "Billing" . "Plans"(id),
              country text REFERENCES countries (code),
              again int references ACCOUNTS.users
            ); -- REFERENCES tenancy.tenants (id)
            COMMENT ON TABLE {{tables.tasks}} IS 'REFERENCES other.t';`).externalReferences,
    ).toEqual(['accounts.users', '"Billing"."Plans"', 'ACCOUNTS.users']);
  });
});
