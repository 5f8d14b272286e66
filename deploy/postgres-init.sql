-- One database per service, each owned by the service's own user: services never share tables, and
-- none can even connect to another's database (CONNECT is revoked from PUBLIC). The service's user
-- runs its migrations (it owns the schema) and nothing else; the superuser is only for operators.
-- The passwords are compose's demo ones: a deployment sets its own (ALTER ROLE … PASSWORD '…') and
-- hands each service only its own <SERVICE>_DB_URL.
CREATE ROLE motcua_gateway LOGIN PASSWORD 'motcua_gateway';
CREATE DATABASE motcua_gateway OWNER motcua_gateway;
REVOKE ALL ON DATABASE motcua_gateway FROM PUBLIC;

CREATE ROLE motcua_intake LOGIN PASSWORD 'motcua_intake';
CREATE DATABASE motcua_intake OWNER motcua_intake;
REVOKE ALL ON DATABASE motcua_intake FROM PUBLIC;

CREATE ROLE motcua_workflow LOGIN PASSWORD 'motcua_workflow';
CREATE DATABASE motcua_workflow OWNER motcua_workflow;
REVOKE ALL ON DATABASE motcua_workflow FROM PUBLIC;

CREATE ROLE motcua_notify LOGIN PASSWORD 'motcua_notify';
CREATE DATABASE motcua_notify OWNER motcua_notify;
REVOKE ALL ON DATABASE motcua_notify FROM PUBLIC;

CREATE ROLE motcua_reporting LOGIN PASSWORD 'motcua_reporting';
CREATE DATABASE motcua_reporting OWNER motcua_reporting;
REVOKE ALL ON DATABASE motcua_reporting FROM PUBLIC;
