-- A sqlite3 workload for the malloc shim (ci/selfhost, ci/bench part programs): a few hundred
-- thousand rows inserted, indexed, queried through the index, updated and deleted.
-- The row count comes from the parameter table the caller creates first (see ci/programs.sh).
CREATE TABLE t(id INTEGER PRIMARY KEY, k TEXT, v REAL, blob BLOB);
WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < (SELECT n FROM params))
INSERT INTO t SELECT x, hex(randomblob(8)), random() / 1e9, randomblob(x % 200) FROM c;
CREATE INDEX t_k ON t(k);
SELECT count(*) > 0 FROM t WHERE k BETWEEN 'A' AND 'C';
UPDATE t SET v = v * 2 WHERE id % 3 = 0;
DELETE FROM t WHERE id % 5 = 0;
SELECT count(*), count(DISTINCT substr(k, 1, 3)) > 0 FROM t;
SELECT k FROM t ORDER BY k LIMIT 1 OFFSET 1000;
PRAGMA integrity_check;
