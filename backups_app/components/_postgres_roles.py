"""The cluster-level part of a PostgreSQL backup: the roles the database needs (its owner, the
owners of its objects, every role granted a privilege in it, and the roles those are members of),
with their attributes and memberships. ``pg_dump`` leaves them out, so a database restored onto a
new server would fail on its first ``ALTER … OWNER TO``.

They are stored as ``<name>.roles.sql``, a plain SQL script that ``psql -f`` runs: each role is
created only when it does not exist (an existing role is never changed, only noted), its
memberships granted in the same step, parents before members. Passwords (SCRAM hashes) are left
out unless ``POSTGRES_BACKUP_ROLE_PASSWORDS`` is on (reading them needs a superuser).
"""

from psycopg import sql

# Every role a database's objects refer to (0 is PUBLIC), then the roles they are members of.
ROLES_SQL = """
WITH RECURSIVE used(oid) AS (
    SELECT datdba FROM pg_database WHERE datname = current_database()
    UNION SELECT (aclexplode(datacl)).grantee FROM pg_database WHERE datname = current_database()
    UNION SELECT nspowner FROM pg_namespace
    UNION SELECT (aclexplode(nspacl)).grantee FROM pg_namespace
    UNION SELECT relowner FROM pg_class
    UNION SELECT (aclexplode(relacl)).grantee FROM pg_class
    UNION SELECT (aclexplode(attacl)).grantee FROM pg_attribute WHERE attacl IS NOT NULL
    UNION SELECT proowner FROM pg_proc
    UNION SELECT (aclexplode(proacl)).grantee FROM pg_proc
    UNION SELECT typowner FROM pg_type
    UNION SELECT (aclexplode(typacl)).grantee FROM pg_type
    UNION SELECT lomowner FROM pg_largeobject_metadata
    UNION SELECT (aclexplode(lomacl)).grantee FROM pg_largeobject_metadata
    UNION SELECT defaclrole FROM pg_default_acl
    UNION SELECT (aclexplode(defaclacl)).grantee FROM pg_default_acl
    UNION SELECT unnest(polroles) FROM pg_policy
), needed(oid) AS (
    SELECT oid FROM used WHERE oid <> 0
    UNION SELECT m.roleid FROM pg_auth_members m JOIN needed n ON m.member = n.oid
)
SELECT r.rolname, r.rolsuper, r.rolinherit, r.rolcreaterole, r.rolcreatedb, r.rolcanlogin, r.rolreplication,
       r.rolbypassrls, r.rolconnlimit, r.rolvaliduntil::text,
       ARRAY(SELECT g.rolname FROM pg_auth_members m JOIN pg_roles g ON g.oid = m.roleid
             WHERE m.member = r.oid AND m.roleid IN (SELECT oid FROM needed) ORDER BY 1)
FROM pg_roles r WHERE r.oid IN (SELECT oid FROM needed) AND r.rolname !~ '^pg_'
ORDER BY r.rolname
"""

FLAGS = [("superuser", "SUPERUSER"), ("inherit", "INHERIT"), ("createrole", "CREATEROLE"),
         ("createdb", "CREATEDB"), ("login", "LOGIN"), ("replication", "REPLICATION"), ("bypassrls", "BYPASSRLS")]


def read_roles(cursor, with_passwords=False):
    """The roles the connected database needs: [{name, <flag>: bool, connection_limit,
    valid_until, member_of: [names]}], plus ``password`` (a hash) when asked for."""
    cursor.execute(ROLES_SQL)
    roles = []
    for name, *flags, limit, valid_until, member_of in cursor.fetchall():
        roles.append({"name": name, **{key: flag for (key, _), flag in zip(FLAGS, flags)},
                      "connection_limit": limit, "valid_until": valid_until, "member_of": list(member_of)})
    if with_passwords and roles:
        cursor.execute("SELECT rolname, rolpassword FROM pg_authid WHERE rolname = ANY(%s)",
                       [[r["name"] for r in roles]])
        passwords = dict(cursor.fetchall())
        for role in roles:
            role["password"] = passwords.get(role["name"])
    return roles


def _parents_first(roles):
    by_name, ordered, seen = {r["name"]: r for r in roles}, [], set()

    def visit(role):
        if role["name"] in seen:
            return
        seen.add(role["name"])
        for parent in role["member_of"]:
            if parent in by_name:
                visit(by_name[parent])
        ordered.append(role)

    for role in roles:
        visit(role)
    return ordered


def _create_statement(role):
    options = [word if role[key] else f"NO{word}" for key, word in FLAGS]
    options.append(f"CONNECTION LIMIT {int(role['connection_limit'])}")
    parts = [sql.SQL("CREATE ROLE {} WITH " + " ".join(options)).format(sql.Identifier(role["name"]))]
    if role.get("valid_until"):
        parts.append(sql.SQL("VALID UNTIL {}").format(sql.Literal(role["valid_until"])))
    if role.get("password"):
        parts.append(sql.SQL("PASSWORD {}").format(sql.Literal(role["password"])))
    return sql.SQL(" ").join(parts)


def roles_script(roles, conn):
    """The ``<name>.roles.sql`` text: for each role, parents first, a DO block that creates it
    with its memberships when it is missing and otherwise only says it was left unchanged."""
    blocks = ["-- Roles the database needs; existing roles are left unchanged. Run: psql -f <this file>\n"]
    for role in _parents_first(roles):
        name = sql.Literal(role["name"]).as_string(conn)
        statements = [_create_statement(role)] + [
            sql.SQL("GRANT {} TO {}").format(sql.Identifier(parent), sql.Identifier(role["name"]))
            for parent in role["member_of"]]
        body = (f"  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = {name}) THEN\n"
                f"    {sql.SQL(';  ').join(statements).as_string(conn)};\n"
                f"    RAISE NOTICE 'role % created', {name};\n"
                f"  ELSE\n    RAISE NOTICE 'role % exists; left unchanged', {name};\n  END IF;\n")
        tag = "$roles$"
        while tag in body:  # a role name holding the quote tag cannot end the block early
            tag = tag[:-1] + "_$"
        blocks.append(f"DO {tag} BEGIN\n{body}END {tag};\n")
    return "".join(blocks)


def missing(cursor, names):
    """Which of ``names`` the connected server has no role for."""
    cursor.execute("SELECT rolname FROM pg_roles WHERE rolname = ANY(%s)", [list(names)])
    present = {row[0] for row in cursor.fetchall()}
    return [name for name in names if name not in present]


def can_create_roles(cursor):
    cursor.execute("SELECT rolsuper OR rolcreaterole FROM pg_roles WHERE rolname = current_user")
    return bool(cursor.fetchone()[0])
