-- PostgreSQL compatibility for Kill Bill's MySQL-flavoured DDL, as Kill Bill documents it for
-- its own PostgreSQL support: a `datetime` type (a timestamp without time zone).
CREATE DOMAIN datetime AS timestamp without time zone;
