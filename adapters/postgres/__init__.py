"""PostgreSQL: connection pool, embedded cluster, migrations, readiness."""
