-- One database per service, each owned by the service's own user: services never share tables, and
-- none can even connect to another's database (CONNECT is revoked from PUBLIC). The service's user
-- runs its migrations (it owns the schema) and nothing else; the superuser is only for operators.
-- The passwords are compose's demo ones (each user's name): a deployment sets its own
-- (ALTER ROLE … PASSWORD '…') and hands each service only its own <SERVICE>_DB_URL.
-- Run by psql (the image's docker-entrypoint-initdb.d): \gexec runs each generated statement.
SELECT format('CREATE ROLE %1$I LOGIN PASSWORD %1$L', name),
       format('CREATE DATABASE %1$I OWNER %1$I', name),
       format('REVOKE ALL ON DATABASE %1$I FROM PUBLIC', name)
FROM unnest(ARRAY['motcua_gateway', 'motcua_intake', 'motcua_workflow', 'motcua_notify', 'motcua_reporting']) AS name
\gexec
