"""The least-privilege login: what ``DATABASE_URL`` may be, and the SQL that makes one.

``DATABASE_MIGRATE_URL`` logs in as the schema owner and runs the migrations; ``DATABASE_URL``
logs in as a role that is not a superuser, has no ``BYPASSRLS`` or ``CREATEROLE``, owns no
table (itself or through a role it may become) and may ``SET ROLE`` to
:data:`~beachmanager.registry.migrate.APP_ROLE` only, or is that role.  Then even a session
that ran ``RESET ROLE`` stays under row-level security and owns nothing it could alter.
:func:`login_problems` says what is wrong with the session's login (the registry refuses to
start on any of it when ``BEACH_ENV=production`` and warns otherwise);
:func:`login_role_script` is what an operator (or the smoke stack, or a test) runs as a
superuser to create such a login.
"""

from __future__ import annotations

import re

from .migrate import APP_ROLE

_IDENT = re.compile(r"[a-z_][a-z0-9_]{0,62}")

#: One row about the session's login: its name, its flags, the tables it may act as owner
#: of (its own or a role's it may become), and the other roles it may become.
LOGIN_QUERY = """
SELECT s.rolname, s.rolsuper, s.rolbypassrls, s.rolcreaterole,
       (SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f')
           AND n.nspname NOT IN ('pg_catalog', 'information_schema')
           AND n.nspname NOT LIKE 'pg\\_toast%%'
           AND pg_has_role(s.oid, c.relowner, 'MEMBER')),
       (SELECT min(n.nspname || '.' || c.relname) FROM pg_class c
          JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f')
           AND n.nspname NOT IN ('pg_catalog', 'information_schema')
           AND n.nspname NOT LIKE 'pg\\_toast%%'
           AND pg_has_role(s.oid, c.relowner, 'MEMBER')),
       ARRAY(SELECT r.rolname FROM pg_roles r
              WHERE r.oid <> s.oid AND r.rolname <> %(app)s AND r.rolname NOT LIKE 'pg\\_%%'
                AND pg_has_role(s.oid, r.oid, 'MEMBER') ORDER BY r.rolname),
       ARRAY(SELECT r.rolname FROM pg_roles r
              WHERE r.oid <> s.oid AND (r.rolsuper OR r.rolbypassrls OR r.rolcreaterole)
                AND pg_has_role(s.oid, r.oid, 'MEMBER') ORDER BY r.rolname)
FROM pg_roles s WHERE s.rolname = session_user
"""


def login_problems(row) -> tuple[str, list[str]]:
    """(the login's name, what makes it more than a least-privilege login) from one
    :data:`LOGIN_QUERY` row."""
    name, superuser, bypass, createrole, owned, first_owned, others, mighty = row
    problems = []
    if superuser:
        problems.append("is a superuser")
    if bypass:
        problems.append("has BYPASSRLS")
    if createrole:
        problems.append("has CREATEROLE")
    if owned:
        problems.append(f"owns {owned} table(s) (e.g. {first_owned}) itself or through a role "
                        f"it may become")
    if mighty:
        problems.append(f"may SET ROLE to privileged role(s) {', '.join(mighty)}")
    elif others:
        problems.append(f"may SET ROLE to {', '.join(others)} (only {APP_ROLE} is expected)")
    return name, problems


def refusal(name: str, problems: list[str]) -> str:
    """The one line the registry says about a login that is more than least privilege."""
    return (f"DATABASE_URL logs in as {name!r}, which {'; '.join(problems)}: it must be a "
            f"login that is not a superuser, owns no table and can only SET ROLE to {APP_ROLE} "
            f"(give the schema owner's URL in DATABASE_MIGRATE_URL; see docs/migration.md)")


def quote_literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def login_role_script(login: str, password: str | None = None) -> str:
    """SQL (for a superuser, or the creator of the app role) that creates *login* as the
    service's least-privilege login; the app role is created too when it does not exist yet
    (the first migration then keeps it)."""
    if not _IDENT.fullmatch(login):
        raise ValueError(f"login role name {login!r} must be a lower-case SQL identifier")
    secret = f" PASSWORD {quote_literal(password)}" if password is not None else ""
    return (
        "DO $$ BEGIN\n"
        f"    CREATE ROLE {APP_ROLE} NOLOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE;\n"
        "EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL;\n"
        "END $$;\n"
        f"CREATE ROLE {login} LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE"
        f"{secret};\n"
        f"GRANT {APP_ROLE} TO {login};\n")
