-- One database per service: services never share tables.
CREATE DATABASE motcua_gateway;
CREATE DATABASE motcua_intake;
CREATE DATABASE motcua_workflow;
CREATE DATABASE motcua_notify;
CREATE DATABASE motcua_reporting;
